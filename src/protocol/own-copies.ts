/**
 * Typed arrays of a task's own inside an input other tasks take too
 * (codec.ts, decodeCopy): small ones copied at once, large ones when the
 * task first reads them. A shuffle's `pick` takes one 16 KiB piece of a
 * partition of 64: copying all 64 for each of the 64 picks was 4 GiB of
 * copying per shuffle and the largest cost of its executor threads (1.2 s
 * of 3.7 s per worker, profiled); copied when read, it is 64 MiB.
 */

/** A typed array at least this large is copied when first read; a smaller one at once (copying it costs less than tracking it). */
export const LAZY_BYTES = 4096;

/**
 * Small typed arrays are carved out of blocks of this size, not allocated
 * one by one: the 64 pieces of a shuffle's partition cost 64 allocations
 * (zeroed, then overwritten) per task otherwise. Blocks stay under the
 * worker's MALLOC_MMAP_THRESHOLD_, so freed ones are reused, not mapped
 * (and faulted in) anew.
 */
const ARENA_BLOCK = 256 * 1024;
let arena: ArrayBuffer | null = null;
let arenaAt = 0;

type TypedArrayClass = new (buffer: ArrayBuffer, byteOffset: number, length: number) => ArrayBufferView;

/** A copy of `view` (a typed array), of the same class. */
export function copyOf<T extends ArrayBufferView>(view: T): T {
  const n = view.byteLength;
  const Ctor = view.constructor as unknown as TypedArrayClass & { BYTES_PER_ELEMENT: number };
  let out: ArrayBufferView;
  if (n <= ARENA_BLOCK / 4) {
    // Not zero-filled memory: every byte is written below.
    arenaAt = (arenaAt + 7) & ~7;
    if (arena === null || arenaAt + n > ARENA_BLOCK) {
      arena = Buffer.allocUnsafeSlow(ARENA_BLOCK).buffer as ArrayBuffer;
      arenaAt = 0;
    }
    out = new Ctor(arena, arenaAt, n / Ctor.BYTES_PER_ELEMENT);
    arenaAt += n;
  } else {
    out = new Ctor(new ArrayBuffer(n), 0, n / Ctor.BYTES_PER_ELEMENT);
  }
  new Uint8Array(out.buffer, out.byteOffset, n).set(new Uint8Array(view.buffer, view.byteOffset, n));
  return out as T;
}

/**
 * `holder` as seen through a proxy that gives, for each of its properties
 * holding one of `views`, a copy of its own made when first read (or
 * described: no way of reading gives the shared view). A proxy, not an
 * accessor per property: 64 accessors cost about what copying 1 MiB does
 * here, a proxy a tenth of it. The one difference a task can see: a value
 * holding a proxy cannot be posted to another thread (structuredClone).
 */
function copiesWhenRead<T extends object>(holder: T, views: Set<unknown>): T {
  const own = (t: T, key: string | symbol): void => {
    const x = (t as Record<string | symbol, unknown>)[key];
    if (!views.has(x)) return;
    views.delete(x);
    (t as Record<string | symbol, unknown>)[key] = copyOf(x as ArrayBufferView);
  };
  return new Proxy(holder, {
    get(t, key) {
      if (views.size > 0) own(t, key);
      return (t as Record<string | symbol, unknown>)[key];
    },
    getOwnPropertyDescriptor(t, key) {
      if (views.size > 0) own(t, key);
      return Reflect.getOwnPropertyDescriptor(t, key);
    },
  });
}

/**
 * `value` with a copy of its own, made when first read, in place of each
 * typed array of `deferred` (views of shared bytes): arrays and objects that
 * hold such views are given out behind a proxy (copiesWhenRead); in Maps and
 * Sets the views are copied at once. Null when some deferred view was not
 * found (then `value` must not be given out).
 */
export function copyDeferred(value: unknown, deferred: Set<ArrayBufferView>): unknown {
  let left = deferred.size;
  const isDeferred = (x: unknown): x is ArrayBufferView => ArrayBuffer.isView(x) && deferred.has(x);
  /** `v`, or what to put in its place. */
  const visit = (v: unknown): unknown => {
    if (left === 0 || typeof v !== 'object' || v === null || ArrayBuffer.isView(v)) return v;
    if (v instanceof Map) {
      for (const [k, x] of v) {
        if (isDeferred(x)) {
          v.set(k, copyOf(x));
          left--;
        } else {
          const y = visit(x);
          if (y !== x) v.set(k, y);
        }
      }
      return v;
    }
    if (v instanceof Set) {
      const items = [...v];
      const own = items.map((x) => (isDeferred(x) ? (left--, copyOf(x)) : visit(x)));
      // Rebuilt (in its order) only when a member changed.
      if (own.some((y, i) => y !== items[i])) {
        v.clear();
        for (const y of own) v.add(y);
      }
      return v;
    }
    // Arrays, objects (msgpack maps and records) and whatever else an extension made: their own enumerable properties.
    let views: Set<unknown> | null = null;
    const holder = v as Record<string, unknown>;
    const visitKey = (k: string | number): void => {
      const x = holder[k];
      if (typeof x !== 'object' || x === null) return;
      if (isDeferred(x)) {
        (views ??= new Set()).add(x);
        left--;
        return;
      }
      const y = visit(x);
      if (y !== x) holder[k] = y;
    };
    if (Array.isArray(v)) for (let i = 0; i < v.length && left > 0; i++) visitKey(i);
    else for (const k of Object.keys(v)) visitKey(k);
    return views === null ? v : copiesWhenRead(v, views);
  };
  const out = visit(value);
  return left === 0 ? out : null;
}
