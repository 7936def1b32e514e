import { describe, expect, it } from 'vitest';
import { decode, DepRef, encode, encodeOwned, encodeTransient } from '../src/protocol/codec.ts';
import { ByteWriter, encodeSimple, NOT_SIMPLE, readSimple, writeSimple } from '../src/protocol/simple-codec.ts';
import { decodeValue, encodeValue } from '../src/jobs/values.ts';

const SCALARS: unknown[] = [null, true, false, 0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), 2 ** 32, -(2 ** 31) - 1, 2 ** 53, 0.5, -0, -1.25, Number.MAX_VALUE, Number.NaN, Infinity, -Infinity, '', 'a', 'x'.repeat(31), 'x'.repeat(32), 'x'.repeat(255), 'x'.repeat(256), 'é'.repeat(20), 'é'.repeat(200), 'y'.repeat(70_000), '日本語', '😀'];
const ARRAYS: unknown[] = [[], [1], [1, 'a', null, true, 2.5], Array.from({ length: 15 }, (_, i) => i), Array.from({ length: 16 }, (_, i) => i), Array.from({ length: 70_000 }, (_, i) => i % 300), [[1, [2, ['x']]], []]];

const same = (a: unknown, b: unknown): boolean => (typeof a === 'number' ? Object.is(a, b) : JSON.stringify(a) === JSON.stringify(b));

describe('encoding into msgpackr\'s block', () => {
  it('leaves what encode and encodeOwned gave intact while encodeTransient writes over its own bytes, small and past a block', () => {
    const big = (n: number): Uint8Array => new Uint8Array(200 * 1024).fill(n);
    const same = (bytes: Uint8Array, n: number): boolean => Buffer.from(decode(bytes) as Uint8Array).equals(big(n));
    const kept = encode({ a: 'kept', n: [1, 2, 3] });
    const owned = encodeOwned(big(7));
    const first = encodeTransient({ a: 'first' });
    const firstCopy = Buffer.from(first);
    const second = encodeTransient({ a: 'second, longer than the first' });
    // The second transient encode starts where the first did: its bytes are gone.
    expect(second.byteOffset).toBe(first.byteOffset);
    expect(Buffer.from(first).equals(firstCopy)).toBe(false);
    // Larger than the block: a new one, then back to reuse.
    for (let i = 0; i < 4; i++) expect(same(Buffer.from(encodeTransient(big(i))), i)).toBe(true);
    const after = encode({ a: 'after' });
    expect(decode(kept)).toEqual({ a: 'kept', n: [1, 2, 3] });
    expect(same(owned, 7)).toBe(true);
    expect(owned.byteOffset === 0 && owned.byteLength === owned.buffer.byteLength).toBe(true);
    expect(decode(after)).toEqual({ a: 'after' });
  });
});

describe('simple msgpack codec', () => {
  it('writes simple values and arrays of them as msgpack that msgpackr decodes to the same value', () => {
    for (const v of [...SCALARS, ...ARRAYS]) {
      const bytes = encodeSimple(v);
      expect(bytes, String(v).slice(0, 40)).not.toBeNull();
      expect(same(decode(bytes as Uint8Array), v), String(v).slice(0, 40)).toBe(true);
      expect(same(readSimple(bytes as Uint8Array), v), String(v).slice(0, 40)).toBe(true);
    }
  });

  it('reads what msgpackr writes for simple values, and leaves the rest to msgpackr', async () => {
    for (const v of [...SCALARS, ...ARRAYS]) expect(same(readSimple(encode(v)), decode(encode(v))), String(v).slice(0, 40)).toBe(true);
    for (const v of [{ a: 1 }, [1, { a: 2 }], new Uint8Array([1, 2]), new Map([[1, 2]]), 2n ** 70n, new Date(5), [undefined], [[[[[1]]]]]]) {
      expect(encodeSimple(v)).toBeNull();
      expect(readSimple(encode(v))).toBe(NOT_SIMPLE);
      expect(await decodeValue(await encodeValue(v))).toEqual(v);
      expect(decode(await encodeValue(v))).toEqual(v);
    }
  });

  it("writes and reads a task's references to its dependencies (DepRef) as msgpackr does, inside arrays too", () => {
    for (const v of [new DepRef(0), new DepRef(31), new DepRef(200), new DepRef(70_000), [new DepRef(0), 'result[k1]', [new DepRef(1), 2.5, null]]]) {
      const bytes = encodeSimple(v) as Uint8Array;
      expect(bytes).not.toBeNull();
      expect(decode(bytes)).toEqual(v);
      expect(readSimple(bytes)).toEqual(v);
      expect(readSimple(encode(v))).toEqual(v);
    }
    expect(readSimple(encode(new DepRef(3))) instanceof DepRef).toBe(true);
    // A reference that is not an index is msgpackr's to write (and refuse).
    expect(encodeSimple(new DepRef(-1))).toBeNull();
    expect(encodeSimple(new DepRef(1.5))).toBeNull();
  });

  it('writes nothing for a value it cannot write, even part-way through an array', () => {
    const w = new ByteWriter(4);
    expect(writeSimple(w, [1, 2])).toBe(true);
    const before = w.pos;
    expect(writeSimple(w, [1, 'two', { three: 3 }])).toBe(false);
    expect(w.pos).toBe(before);
    expect(decode(w.written)).toEqual([1, 2]);
  });

  it('reads a range of a larger buffer, bounded by the range, not the buffer', () => {
    const w = new ByteWriter(8);
    writeSimple(w, 'ab');
    const mid = w.pos;
    writeSimple(w, [7, 'cd']);
    const buf = w.written;
    expect(readSimple(buf, 0, mid)).toBe('ab');
    expect(readSimple(buf, mid, buf.length)).toEqual([7, 'cd']);
    // A value running past `end` is refused even though the buffer goes on.
    expect(readSimple(buf, 0, mid - 1)).toBe(NOT_SIMPLE);
    expect(readSimple(buf, mid, buf.length - 1)).toBe(NOT_SIMPLE);
    expect(readSimple(buf, 0, buf.length)).toBe(NOT_SIMPLE);
  });

  it('refuses bytes with trailing data, a short string or a short array', () => {
    expect(readSimple(Uint8Array.of(0x01, 0x02))).toBe(NOT_SIMPLE);
    expect(readSimple(Uint8Array.of(0xa3, 0x61))).toBe(NOT_SIMPLE);
    expect(readSimple(Uint8Array.of(0x93, 0x01))).toBe(NOT_SIMPLE);
    expect(readSimple(new Uint8Array(0))).toBe(NOT_SIMPLE);
    // Multi-byte numbers and lengths cut short.
    for (const head of [0xcc, 0xcd, 0xce, 0xd0, 0xd1, 0xd2, 0xca, 0xcb, 0xd9, 0xda, 0xdb, 0xdc, 0xdd]) {
      expect(readSimple(Uint8Array.of(head)), head.toString(16)).toBe(NOT_SIMPLE);
    }
  });

  it('reads values from a view into a larger buffer (as the executor threads do)', () => {
    const values = [300, -300, 70000, -70000, 1.5, 'x'.repeat(40), [1, 'a', [2.25, null]]];
    const parts = values.map((v) => encodeSimple(v) as Uint8Array);
    const whole = new Uint8Array(3 + parts.reduce((n, p) => n + p.length, 0));
    let off = 3;
    for (const p of parts) {
      whole.set(p, off);
      off += p.length;
    }
    off = 3;
    for (let i = 0; i < parts.length; i++) {
      const n = (parts[i] as Uint8Array).length;
      expect(readSimple(whole.subarray(off, off + n))).toEqual(values[i]);
      off += n;
    }
  });
});
