/** Task functions for the graph bench, the same as the Dask peer benchmark's. */

export function inc(x: number): number {
  return x + 1;
}

export function add(a: number, b: number): number {
  return a + b;
}

export function makeBuffer(_i: number): Uint8Array {
  return new Uint8Array(4 * 1024 * 1024);
}

/** The bandwidth workload's values: 16 MiB each. */
export function makeBuffer16(i: number): Uint8Array {
  return new Uint8Array(16 * 1024 * 1024).fill(i % 256);
}

/** The shuffle workload's input partitions: 1 MiB each. */
export function makePart(i: number): Uint8Array {
  return new Uint8Array(1 << 20).fill(i % 256);
}

/** A partition cut into `n` pieces (views of it: encoding them copies each once). */
export function split(part: Uint8Array, n: number): Uint8Array[] {
  const size = Math.floor(part.length / n);
  const out: Uint8Array[] = [];
  for (let k = 0; k < n; k++) out.push(part.subarray(k * size, (k + 1) * size));
  return out;
}

export function pick(groups: Uint8Array[], j: number): Uint8Array {
  const g = groups[j];
  if (!g) throw new Error(`no piece ${j}`);
  return g;
}

/** An output partition: its pieces joined; returns their total length. */
export function join(...pieces: Uint8Array[]): number {
  return Buffer.concat(pieces).length;
}

export function touch(buf: Uint8Array): Uint8Array {
  buf[0] = ((buf[0] ?? 0) + 1) % 256;
  return buf;
}

/** One task of the chaos workload's random DAG (chaos.ts): its number mixed with its inputs, after `ms` of work (a busy wait). */
export function mix(i: number, ms: number, ...inputs: number[]): number {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // busy, as a real task would be
  }
  return (i * 2654435761 + inputs.reduce((a, b) => a + b, 0)) % 1_000_003;
}

/** The stealing bench's input: a small value made on the worker that will hold it. */
export function value(i: number): number {
  return i;
}

/** The stealing bench's work: waits `ms` (as a task waiting on I/O would), then says where it ran. */
export async function sleepy(_input: number, ms: number): Promise<number> {
  await new Promise((r) => setTimeout(r, ms));
  return process.pid;
}

/** The coordination bench's work: holds one of 4 leases of `name` for `ms`, and returns how many were held meanwhile (the scheduler's count). */
export async function guarded(name: string, ms: number): Promise<number> {
  const { Semaphore } = await import('../src/client/coordination.ts');
  const sem = new Semaphore({ name, maxLeases: 4 });
  if (!(await sem.acquire({ timeout: 120 }))) throw new Error('no lease within 120 s');
  try {
    const held = await sem.count();
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
    return held;
  } finally {
    await sem.release();
  }
}
