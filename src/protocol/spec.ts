/**
 * What a worker needs to run a task: a function (listed once per graph and
 * sent once per worker) and the task's arguments as msgpack bytes, passed
 * through the scheduler untouched.
 *
 *   [FN_MODULE, "./tasks.ts#inc", label]   a module export, imported by the worker
 *   [FN_INLINE, "(x) => x + 1", label]     a self-contained function's source
 *
 * The arguments may hold DepRef values anywhere inside arrays and plain
 * objects (an index into the task's dependencies); the worker replaces them
 * with those results.
 */
import { DepRef, KeyRef } from './codec.ts';

export const FN_MODULE = 0;
export const FN_INLINE = 1;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** A copy of `value` with every DepRef replaced by `lookup(index)`; untouched parts are shared. */
export function substituteRefs(value: unknown, lookup: (index: number) => unknown): unknown {
  if (value instanceof DepRef) return lookup(value.index);
  if (Array.isArray(value)) {
    let out: unknown[] | null = null;
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      const s = substituteRefs(v, lookup);
      if (s !== v) {
        out ??= value.slice();
        out[i] = s;
      }
    }
    return out ?? value;
  }
  if (isPlainObject(value)) {
    let out: Record<string, unknown> | null = null;
    for (const k in value) {
      const v = value[k];
      const s = substituteRefs(v, lookup);
      if (s !== v) {
        out ??= { ...value };
        out[k] = s;
      }
    }
    return out ?? value;
  }
  return value;
}

export { DepRef, KeyRef };
