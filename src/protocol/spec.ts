/**
 * The task spec: what a worker needs to run a task, msgpack-encoded once by
 * the client and passed through the scheduler untouched.
 *
 *   [FN_MODULE, "./tasks.ts#inc", args]   a module export, imported by the worker
 *   [FN_INLINE, "(x) => x + 1", args]     a self-contained function's source
 *
 * `args` may hold KeyRef values anywhere inside arrays and plain objects; the
 * worker replaces them with the referenced results.
 */
import { decode, encode, KeyRef } from './codec.ts';

export const FN_MODULE = 0;
export const FN_INLINE = 1;

export type SpecTuple = [kind: typeof FN_MODULE | typeof FN_INLINE, fn: string, args: unknown[]];

export function encodeSpec(kind: typeof FN_MODULE | typeof FN_INLINE, fn: string, args: unknown[]): Buffer {
  return Buffer.from(encode([kind, fn, args]));
}

export function decodeSpec(bytes: Uint8Array): SpecTuple {
  const v = decode(bytes);
  if (!Array.isArray(v) || v.length !== 3 || (v[0] !== FN_MODULE && v[0] !== FN_INLINE) || typeof v[1] !== 'string' || !Array.isArray(v[2])) {
    throw new TypeError('malformed task spec: expected [kind, function, args]');
  }
  return v as SpecTuple;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Calls `fn` for every KeyRef inside arrays and plain objects of `value`. */
export function forEachRef(value: unknown, fn: (ref: KeyRef) => void): void {
  if (value instanceof KeyRef) fn(value);
  else if (Array.isArray(value)) for (const v of value) forEachRef(v, fn);
  else if (isPlainObject(value)) for (const k in value) forEachRef(value[k], fn);
}

/** A copy of `value` with every KeyRef replaced by `lookup(key)`; untouched parts are shared. */
export function substituteRefs(value: unknown, lookup: (key: string) => unknown): unknown {
  if (value instanceof KeyRef) return lookup(value.key);
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

export { KeyRef };
