import { describe, expect, it } from 'vitest';
import { decode, encode, KeyColumn, withKeyColumns } from '../src/protocol/codec.ts';
import { checkGraphColumns, messageSchemas, type GraphMsg } from '../src/protocol/messages.ts';
import { GraphBuilder } from '../src/client/graph.ts';

const { clientToScheduler, workerToPeer, workerToScheduler } = messageSchemas();

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

  it('checks a graph\'s tickets: integers >= -1, one per wanted task', () => {
    const b = new GraphBuilder();
    b.add('./t.ts#inc', [1], {}, 'a');
    b.add('./t.ts#inc', [2], {}, 'b');
    const g = b.build(1, [0, 1], [], Float64Array.from([5, -1]));
    expect(clientToScheduler.safeParse(g).success).toBe(true);
    expect(checkGraphColumns(g)).toBeNull();
    expect(clientToScheduler.safeParse({ ...g, tickets: Float64Array.from([5, -2]) }).error?.issues[0]?.message).toBe('item 1: expected tickets (integers >= -1)');
    expect(checkGraphColumns({ ...g, tickets: Float64Array.from([5]) } as GraphMsg)).toBe('tickets must have one entry per wants entry (2)');
  });

  it('checks data blobs as binary or null', () => {
    const ok = { op: 'data', id: 1, keys: ['a', 'b'], blobs: [new Uint8Array(1), null], missing: [] };
    expect(workerToPeer.safeParse(ok).success).toBe(true);
    const bad = workerToPeer.safeParse({ ...ok, blobs: [new Uint8Array(1), 'x'] });
    expect(bad.error?.issues[0]?.message).toBe('item 1: expected binary values or null');
  });
});

describe('task events', () => {
  it('caps event size and topic length, naming the column and item', () => {
    const ok = workerToScheduler.safeParse({ op: 'task-events', topics: ['run:1'], data: [new Uint8Array(10)] });
    expect(ok.success).toBe(true);
    const big = workerToScheduler.safeParse({ op: 'task-events', topics: ['run:1', 'run:1'], data: [new Uint8Array(1), new Uint8Array(1024 * 1024 + 1)] });
    expect(big.error?.issues[0]?.message).toBe('item 1: expected event data (binary, at most 1048576 bytes each)');
    const topic = clientToScheduler.safeParse({ op: 'subscribe', topics: ['x'.repeat(257)] });
    expect(topic.error?.issues[0]?.message).toBe('item 0: expected topics (non-empty strings of at most 256 characters)');
  });
});

describe('key columns', () => {
  it('carries a long list of keys as one string and gives the receiver the same keys back', () => {
    const keys = Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? `ключ-${i}` : `k${i}-${'x'.repeat(i)}`));
    const msg = { op: 'free', keys, other: ['a', 'b'] };
    const wire = withKeyColumns(msg) as { keys: unknown };
    expect(wire.keys).toBeInstanceOf(KeyColumn);
    expect(msg.keys).toBe(keys); // the sender's message is left as it was
    expect(decode(encode([wire]))).toEqual([msg]);
    // Short lists go as they are.
    const few = { op: 'free', keys: ['a'] };
    expect(withKeyColumns(few)).toBe(few);
  });

  it('refuses a malformed column with a reason instead of returning wrong keys', () => {
    // A key column on the wire: msgpackr's tag for extension 0x58, then the value [text, lengths].
    const frame = (text: unknown, lengths: unknown): Uint8Array => Buffer.concat([Buffer.from([0xd4, 0x58, 0x00]), encode([text, lengths])]);
    expect(decode(frame('abc', new Uint32Array([1, 2])))).toEqual(['a', 'bc']);
    expect(() => decode(frame('abc', new Uint32Array([1, 1])))).toThrow(/the lengths cover 2 of 3 characters/);
    expect(() => decode(frame('abc', new Uint32Array([1, 5])))).toThrow(/key 1 \(length 5\) runs past the text/);
    // An empty key comes back as one, for the message's schema to refuse with its own reason.
    expect(decode(frame('abc', new Uint32Array([1, 0, 2])))).toEqual(['a', '', 'bc']);
    expect(() => decode(frame('abc', [1, 2]))).toThrow(/expected \[text, Uint32Array of lengths\]/);
  });
});
