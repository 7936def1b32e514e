/**
 * decodeCopy in an executor thread's codec (typed arrays as views): every
 * decode of the same bytes is a value of its own, however a task reads or
 * changes it; large typed arrays are copied when first read.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCopy, encode, typedArrayViews } from '../src/protocol/codec.ts';

typedArrayViews();

const value = (): { parts: Uint8Array[]; named: { big: Float64Array; small: Uint8Array }; inMap: Map<string, Uint8Array>; nested: Uint8Array[][] } => ({
  parts: Array.from({ length: 8 }, (_, k) => new Uint8Array(16384).fill(k)),
  named: { big: new Float64Array(1024).fill(1.5), small: new Uint8Array(16).fill(7) },
  inMap: new Map([['a', new Uint8Array(8192).fill(9)]]),
  nested: [[new Uint8Array(4096).fill(3)]],
});

describe('decodeCopy', () => {
  it('gives each decode values of its own: changes through any way of reading reach no other decode', () => {
    const bytes = Buffer.from(encode(value()));
    const a = decodeCopy(bytes) as ReturnType<typeof value>;
    expect(Array.isArray(a.parts)).toBe(true);
    // Described before it is read: the descriptor holds a copy too.
    (Object.getOwnPropertyDescriptor(a.parts, 5)?.value as Uint8Array).fill(0xcc);
    a.parts[3]?.fill(0xee);
    for (const p of a.parts) p[1] = 0xdd;
    a.named.big.fill(-1);
    a.named.small.fill(0);
    a.inMap.get('a')?.fill(0);
    a.nested[0]?.[0]?.fill(0);
    const b = decodeCopy(bytes) as ReturnType<typeof value>;
    expect(b.parts.map((p) => [p[0], p[1], p.length])).toEqual(Array.from({ length: 8 }, (_, k) => [k, k, 16384]));
    expect([b.named.big[1023], b.named.small[15], b.inMap.get('a')?.[8191], b.nested[0]?.[0]?.[4095]]).toEqual([1.5, 7, 9, 3]);
    // The first decode kept its own changes.
    expect([a.parts[3]?.[0], a.parts[3]?.[1], a.parts[5]?.[0], a.parts[5]?.[1], a.named.big[0]]).toEqual([0xee, 0xdd, 0xcc, 0xdd, -1]);
  });

  it('reads as a plain value: spread, JSON, a piece replaced before it was read', () => {
    const v = decodeCopy(Buffer.from(encode(value()))) as ReturnType<typeof value>;
    v.parts[0] = new Uint8Array([42]);
    expect([...v.parts].map((p) => p[0])).toEqual([42, 1, 2, 3, 4, 5, 6, 7]);
    expect(Object.keys(JSON.parse(JSON.stringify(v.named)) as object)).toEqual(['big', 'small']);
    expect(decodeCopy(encode(v))).toEqual(v);
  });

  it('any value: a decode equals the value after another decode was scribbled over (every piece, through its property descriptor)', () => {
    // Typed arrays of sizes either side of the threshold, in arrays, objects, Maps and Sets, nested.
    const typed = fc.tuple(fc.constantFrom(Uint8Array, Int16Array, Float64Array), fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 1, max: 250 })).map(([Ctor, n, fill]) => new Ctor(n).fill(fill));
    const { tree } = fc.letrec<{ tree: unknown }>((tie) => ({
      tree: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        typed,
        fc.integer(),
        fc.array(tie('tree'), { maxLength: 5 }),
        fc.dictionary(fc.constantFrom('a', 'b', 'c'), tie('tree'), { maxKeys: 3 }),
        fc.array(fc.tuple(fc.constantFrom('x', 'y'), tie('tree')), { maxLength: 2 }).map((kv) => new Map(kv)),
        fc.array(typed, { maxLength: 2 }).map((xs) => new Set(xs)),
      ),
    }));
    const scribble = (v: unknown): void => {
      if (ArrayBuffer.isView(v)) new Uint8Array(v.buffer, v.byteOffset, v.byteLength).fill(0xee);
      else if (v instanceof Map || v instanceof Set) for (const x of v.values()) scribble(x);
      else if (typeof v === 'object' && v !== null) for (const k of Object.keys(v)) scribble((Object.getOwnPropertyDescriptor(v, k) as PropertyDescriptor).value);
    };
    fc.assert(
      fc.property(tree, (v) => {
        const bytes = Buffer.from(encode(v));
        // Scribbled before anything else reads it (reading through the proxy would copy every piece first).
        scribble(decodeCopy(bytes));
        expect(decodeCopy(bytes)).toEqual(v);
      }),
      { numRuns: 200 },
    );
  });
});
