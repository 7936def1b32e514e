/** Cycle detection among a graph's new tasks, over index arrays. */

/**
 * One cycle among the new tasks, as task indices (first repeated at the end),
 * or null. Kahn's algorithm over index arrays; `depIndex(k)` maps entry k of
 * the dependency column to a new task's index, or -1.
 */
export function findCycle(n: number, isFresh: Uint8Array, depStart: Int32Array, depIndex: (k: number) => number): number[] | null {
  const indeg = new Int32Array(n);
  const outCount = new Int32Array(n + 1);
  let edges = 0;
  for (let i = 0; i < n; i++) {
    if (!isFresh[i]) continue;
    for (let k = depStart[i] as number; k < (depStart[i + 1] as number); k++) {
      const j = depIndex(k);
      if (j < 0) continue;
      indeg[i] = (indeg[i] as number) + 1;
      outCount[j + 1] = (outCount[j + 1] as number) + 1;
      edges++;
    }
  }
  if (edges === 0) return null;
  for (let i = 0; i < n; i++) outCount[i + 1] = (outCount[i + 1] as number) + (outCount[i] as number);
  const fill = outCount.slice(0, n);
  const out = new Int32Array(edges);
  for (let i = 0; i < n; i++) {
    if (!isFresh[i]) continue;
    for (let k = depStart[i] as number; k < (depStart[i + 1] as number); k++) {
      const j = depIndex(k);
      if (j >= 0) {
        const at = fill[j] as number;
        out[at] = i;
        fill[j] = at + 1;
      }
    }
  }
  const ready: number[] = [];
  let fresh = 0;
  for (let i = 0; i < n; i++) {
    if (!isFresh[i]) continue;
    fresh++;
    if (indeg[i] === 0) ready.push(i);
  }
  let done = 0;
  while (ready.length > 0) {
    const j = ready.pop() as number;
    done++;
    for (let e = outCount[j] as number; e < (outCount[j + 1] as number); e++) {
      const i = out[e] as number;
      const left = (indeg[i] as number) - 1;
      indeg[i] = left;
      if (left === 0) ready.push(i);
    }
  }
  if (done === fresh) return null;
  // Walk from a task left over along dependencies also left over until one repeats.
  let at = -1;
  for (let i = 0; i < n && at < 0; i++) if (isFresh[i] && (indeg[i] as number) > 0) at = i;
  const path: number[] = [];
  const seenAt = new Map<number, number>();
  while (!seenAt.has(at)) {
    seenAt.set(at, path.length);
    path.push(at);
    let next = -1;
    for (let k = depStart[at] as number; k < (depStart[at + 1] as number) && next < 0; k++) {
      const j = depIndex(k);
      if (j >= 0 && (indeg[j] as number) > 0) next = j;
    }
    if (next < 0) break;
    at = next;
  }
  const cycle = path.slice(seenAt.get(at) ?? 0);
  cycle.push(at);
  return cycle.reverse();
}
