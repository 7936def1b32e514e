/**
 * Fetching results (client/fetch.ts) when the scheduler names a holder that
 * is gone: a worker just killed stays named until the scheduler sees its
 * connection close, which can take a while when the scheduler is busy or
 * stopped (a chaos test's CI failure: five rounds against a refused connect
 * passed in milliseconds). The fetcher here stands for the client's
 * connections; the real ones are covered by the chaos tests.
 */
import { describe, expect, it } from 'vitest';
import { encode } from '../src/protocol/codec.ts';
import { DataLostError, WeftError } from '../src/errors.ts';
import { fetchValues, type Fetchable, type Fetcher } from '../src/client/fetch.ts';
import type { WorkerToPeer } from '../src/protocol/messages.ts';

/** Keys `k0..`, whose holder is named `dead` until `staleMs` after the first request, then `live`; `live` holds every key as its index. */
function cluster(n: number, staleMs: number): { fetcher: Fetcher<Fetchable>; states: Fetchable[]; asked: string[] } {
  const states: Fetchable[] = Array.from({ length: n }, (_, i) => ({ key: `k${i}`, where: 'dead' }));
  const asked: string[] = [];
  let start = -1;
  const fetcher: Fetcher<Fetchable> = {
    wait: async () => {},
    whoHas: async (keys) => keys.map(() => (performance.now() - start < staleMs ? 'dead' : 'live')),
    get: async (address, keys) => {
      if (start < 0) start = performance.now();
      asked.push(address);
      if (address === 'dead') throw new WeftError('connect ECONNREFUSED');
      const blobs = [Buffer.concat(keys.map((k) => encode(Number(k.slice(1)))))];
      return { op: 'data', id: 0, keys: [], blobs, raw: [], missing: [], packed: true } as WorkerToPeer;
    },
    drop: () => {},
    log: () => {},
    timeoutMs: () => 30_000,
  };
  return { fetcher, states, asked };
}

describe('fetching results from the workers', () => {
  it('a holder the scheduler still names for 1 s after its worker died: the values come from the next one named', async () => {
    const { fetcher, states, asked } = cluster(3, 1000);
    expect(await fetchValues(fetcher, states)).toEqual([0, 1, 2]);
    expect(asked.at(-1)).toBe('live');
    // Backing off: a few rounds against the dead one, not one per millisecond.
    expect(asked.filter((a) => a === 'dead').length).toBeLessThanOrEqual(6);
  });

  it('a holder named for longer than every round waits out: DataLostError naming the first key', async () => {
    const { fetcher, states } = cluster(2, 60_000);
    const err = await fetchValues(fetcher, states).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(DataLostError);
    expect((err as Error).message).toMatch(/could not fetch 2 result\(s\) .*first: k0/);
  }, 30_000);
});
