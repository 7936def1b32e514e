import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../src/client/graph.ts';

describe('graph builder', () => {
  it('keeps one function table entry per function, whatever the order and however the reference string was built', () => {
    const b = new GraphBuilder();
    const inc = (x: number): number => x + 1;
    const base = './tasks.ts';
    b.add(`${base}#inc`, [1], {}, 'a');
    b.add(`${base}#inc`, [2], {}, 'b');
    b.add(inc, [3], {}, 'c');
    b.add(`${base}#dec`, [4], {}, 'd');
    b.add(`${base}#inc`, [5], {}, 'e');
    b.add(inc, [6], {}, 'f');
    const g = b.build(1, [0, 1, 2, 3, 4, 5]);
    expect(g.fnTable.map((f) => f[1].startsWith('./') ? f[1] : 'inline')).toEqual(['./tasks.ts#inc', 'inline', './tasks.ts#dec']);
    expect([...g.fn]).toEqual([0, 0, 1, 2, 0, 1]);
  });
});
