/**
 * Static graph order: depth-first from the graph's outputs, dependencies
 * before dependents (post-order). Running in this order finishes one branch
 * of a reduction before starting the next, so intermediate results are
 * released early instead of piling up breadth-first.
 */

export interface OrderNode {
  readonly deps: readonly OrderNode[];
  /** Null for a node nothing depends on (an output). */
  readonly dependent: OrderNode | null;
  /** -1: in this graph and not ordered yet; set here. Nodes with order >= 0 are skipped. */
  order: number;
}

const VISITING = -2;

/**
 * Numbers `nodes` (in submission order) from `first` on, in execution order,
 * and returns the next free number. Iterative: a chain of a million tasks
 * needs no deep recursion.
 */
export function assignGraphOrder(nodes: readonly OrderNode[], first: number): number {
  let next = first;
  const stack: OrderNode[] = [];
  const pos: number[] = [];
  const visitFrom = (root: OrderNode): void => {
    if (root.order !== -1) return;
    root.order = VISITING;
    stack.push(root);
    pos.push(0);
    while (stack.length > 0) {
      const top = stack.length - 1;
      const node = stack[top] as OrderNode;
      const deps = node.deps;
      let i = pos[top] as number;
      while (i < deps.length && (deps[i] as OrderNode).order !== -1) i++;
      if (i < deps.length) {
        pos[top] = i + 1;
        const d = deps[i] as OrderNode;
        d.order = VISITING;
        stack.push(d);
        pos.push(0);
      } else {
        stack.pop();
        pos.pop();
        node.order = next++;
      }
    }
  };
  // Start from the outputs (nothing in the graph depends on them), in submission order.
  for (const n of nodes) if (n.dependent === null) visitFrom(n);
  for (const n of nodes) visitFrom(n);
  return next;
}
