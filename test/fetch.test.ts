/**
 * Fetching results (client/fetch.ts) when holders die: the scheduler may
 * name a holder that is gone until it sees its connection close, which can
 * take a while when the scheduler is busy or stopped (a chaos test's CI
 * failure: five rounds against a refused connect passed in milliseconds);
 * and a key may be lost and computed again more times than that while
 * workers keep dying. The fetcher here stands for the client's connections
 * and its book of keys; the real ones are covered by the chaos tests.
 */
import { describe, expect, it } from 'vitest';
import { encode } from '../src/protocol/codec.ts';
import { DataLostError, WeftError } from '../src/errors.ts';
import { fetchValues, type Fetchable, type Fetcher } from '../src/client/fetch.ts';
import type { WorkerToPeer } from '../src/protocol/messages.ts';

/** A worker's packed reply with the values of `keys` (key `kI` holds I). */
function reply(keys: readonly string[]): WorkerToPeer {
  const blobs = [Buffer.concat(keys.map((k) => encode(Number(k.slice(1)))))];
  return { op: 'data', id: 0, keys: [], blobs, raw: [], missing: [], packed: true } as WorkerToPeer;
}

/** A fetcher from what its book of keys says and what its workers do (`serve` throws for one that cannot answer). */
function fetcherOf<S extends Fetchable>(book: Pick<Fetcher<S>, 'wait' | 'inMemory' | 'whoHas'>, serve: (address: string, keys: readonly string[]) => void): Fetcher<S> {
  return {
    ...book,
    get: async (address, keys) => {
      serve(address, keys);
      return reply(keys);
    },
    drop: () => {},
    log: () => {},
    timeoutMs: () => 30_000,
  };
}

/** Keys `k0..`, whose holder is named `dead` until `staleMs` after the first request, then `live`. */
function cluster(n: number, staleMs: number): { fetcher: Fetcher<Fetchable>; states: Fetchable[]; asked: string[] } {
  const states: Fetchable[] = Array.from({ length: n }, (_, i) => ({ key: `k${i}`, where: 'dead' }));
  const asked: string[] = [];
  let start = -1;
  const book = { wait: async () => {}, inMemory: () => true, whoHas: async (keys: string[]) => keys.map(() => (performance.now() - start < staleMs ? 'dead' : 'live')) };
  const fetcher = fetcherOf<Fetchable>(book, (address) => {
    if (start < 0) start = performance.now();
    asked.push(address);
    if (address === 'dead') throw new WeftError('connect ECONNREFUSED');
  });
  return { fetcher, states, asked };
}

type Lost = Fetchable & { lost: boolean };

/** Keys `k0..` held by worker w0; each worker dies as it is asked, until `deaths` have: each time the keys are lost and computed again on the next. */
function dying(n: number, deaths: number): { fetcher: Fetcher<Lost>; states: Lost[]; asked: string[] } {
  const states: Lost[] = Array.from({ length: n }, (_, i) => ({ key: `k${i}`, where: 'w0', lost: false }));
  const asked: string[] = [];
  let died = 0;
  const book = {
    // Computed again on the next worker.
    wait: async (waiting: Lost[]) => {
      for (const st of waiting) if (st.lost) Object.assign(st, { lost: false, where: `w${died}` });
    },
    inMemory: (st: Lost) => !st.lost,
    whoHas: async (keys: string[]) => keys.map((k) => states.find((st) => st.key === k)?.where ?? undefined),
  };
  const fetcher = fetcherOf<Lost>(book, (address, keys) => {
    asked.push(address);
    if (died === deaths) return;
    died++;
    for (const st of states) if (keys.includes(st.key)) Object.assign(st, { lost: true, where: null });
    throw new WeftError(`worker ${address} closed the connection`);
  });
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

  it('keys lost with their worker and computed again 12 times in a row: the values come from the 13th, without backing off', async () => {
    const { fetcher, states, asked } = dying(3, 12);
    const t0 = performance.now();
    expect(await fetchValues(fetcher, states)).toEqual([0, 1, 2]);
    expect(asked).toEqual(Array.from({ length: 13 }, (_, i) => `w${i}`));
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('a holder named for longer than every round waits out: DataLostError naming the first key', async () => {
    const { fetcher, states } = cluster(2, 60_000);
    const err = await fetchValues(fetcher, states).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(DataLostError);
    expect((err as Error).message).toMatch(/could not fetch 2 result\(s\) .*first: k0/);
  }, 30_000);
});
