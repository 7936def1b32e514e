/**
 * Static graph order: depth-first from the graph's outputs, dependencies
 * before dependents (post-order). Running in this order finishes one branch
 * of a reduction before starting the next, so intermediate results are
 * released early instead of piling up breadth-first.
 */

export interface OrderNode {
  deps: readonly OrderNode[];
}

/**
 * Returns the nodes in execution order. `nodes` are in submission order;
 * `isSink(n)` says whether nothing in this graph depends on n. Only nodes in
 * `nodes` are ordered (`inGraph`); dependencies outside the graph are skipped.
 * Iterative, so a chain of a million tasks needs no deep recursion.
 */
export function graphOrder<T extends OrderNode>(nodes: readonly T[], isSink: (n: T) => boolean, inGraph: (n: OrderNode) => boolean): T[] {
  const out: T[] = [];
  const seen = new Set<OrderNode>();
  const stack: { node: OrderNode; next: number }[] = [];
  const visitFrom = (root: T): void => {
    if (seen.has(root)) return;
    seen.add(root);
    stack.push({ node: root, next: 0 });
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as { node: OrderNode; next: number };
      const deps = top.node.deps;
      let descended = false;
      while (top.next < deps.length) {
        const d = deps[top.next++] as OrderNode;
        if (!seen.has(d) && inGraph(d)) {
          seen.add(d);
          stack.push({ node: d, next: 0 });
          descended = true;
          break;
        }
      }
      if (!descended) {
        stack.pop();
        out.push(top.node as T);
      }
    }
  };
  for (const n of nodes) if (isSink(n)) visitFrom(n);
  // Anything unreachable from a sink (cannot happen in a DAG, but be total).
  for (const n of nodes) visitFrom(n);
  return out;
}
