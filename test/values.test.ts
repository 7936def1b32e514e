import { describe, expect, it } from 'vitest';
import { decode, encode } from '../src/protocol/codec.ts';
import { decodeSimple, decodeValue, encodeSimple, encodeValue } from '../src/jobs/values.ts';

const SIMPLE: unknown[] = [null, true, false, 0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), 2 ** 32, -(2 ** 31) - 1, 2 ** 53, 0.5, -0, -1.25, Number.MAX_VALUE, Number.NaN, Infinity, -Infinity, '', 'a', 'x'.repeat(31), 'x'.repeat(32), 'é'.repeat(200), 'y'.repeat(70_000), '日本語'];

describe('step value codec (simple values without msgpackr)', () => {
  it('encodes simple values as msgpack that msgpackr decodes to the same value', () => {
    for (const v of SIMPLE) {
      const bytes = encodeSimple(v);
      expect(bytes, String(v)).not.toBeNull();
      expect(Object.is(decode(bytes as Uint8Array), v), `${String(v)}`).toBe(true);
    }
  });

  it('decodes what msgpackr encodes for simple values, and leaves the rest to msgpackr', async () => {
    for (const v of SIMPLE) expect(Object.is(decodeSimple(encode(v)), decode(encode(v))), `${String(v)}`).toBe(true);
    for (const v of [[1, 2], { a: 1 }, new Uint8Array([1, 2]), new Map([[1, 2]]), 2n ** 70n, new Date(5)]) {
      expect(encodeSimple(v)).toBeNull();
      expect(typeof decodeSimple(encode(v))).toBe('symbol');
      expect(await decodeValue(await encodeValue(v))).toEqual(v);
      expect(decode(await encodeValue(v))).toEqual(v);
    }
  });

  it('refuses bytes with trailing data or a short string', () => {
    expect(typeof decodeSimple(Uint8Array.of(0x01, 0x02))).toBe('symbol');
    expect(typeof decodeSimple(Uint8Array.of(0xa3, 0x61))).toBe('symbol');
    expect(typeof decodeSimple(new Uint8Array(0))).toBe('symbol');
  });
});
