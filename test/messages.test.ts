import { describe, expect, it } from 'vitest';
import { workerToPeer, workerToScheduler } from '../src/protocol/messages.ts';

describe('message validation of hot columns', () => {
  it('accepts a finished report and names the column and item that are wrong', () => {
    const f64 = (...xs: number[]): Float64Array => Float64Array.from(xs);
    const ok = { op: 'finished', keys: ['a', 'b'], runs: f64(1, 2), nbytes: f64(3, 4), durations: f64(0.5, 0) };
    expect(workerToScheduler.safeParse(ok).success).toBe(true);
    const bad = workerToScheduler.safeParse({ ...ok, durations: f64(0.5, -1) });
    expect(bad.success).toBe(false);
    const issue = bad.error?.issues[0];
    expect(issue?.path).toEqual(['durations']);
    expect(issue?.message).toBe('item 1: expected durations (finite numbers >= 0)');
    // A typed column must have its type: a plain array, or integers as floats where indices are due, is refused.
    expect(workerToScheduler.safeParse({ ...ok, runs: [1, 2] }).error?.issues[0]?.message).toBe('expected a Float64Array of non-negative integers');
    expect(workerToScheduler.safeParse({ ...ok, runs: f64(1, 2.5) }).error?.issues[0]?.message).toBe('item 1: expected non-negative integers');
  });

  it('checks data blobs as binary or null', () => {
    const ok = { op: 'data', id: 1, keys: ['a', 'b'], blobs: [new Uint8Array(1), null], missing: [] };
    expect(workerToPeer.safeParse(ok).success).toBe(true);
    const bad = workerToPeer.safeParse({ ...ok, blobs: [new Uint8Array(1), 'x'] });
    expect(bad.error?.issues[0]?.message).toBe('item 1: expected binary values or null');
  });
});
