/**
 * Waiting for many keys and fetching their values as they finish (gather,
 * get). Keys are fetched a chunk at a time, each chunk as soon as it is all
 * finished, whichever finishes first, so that moving the first results
 * overlaps computing the rest instead of all of it waiting for the last
 * task. A `get` also keeps each value it has on its key's record, to give it
 * back if its worker dies (restore.ts); since tasks finish in the
 * scheduler's order, not the keys', a chunk may wait long for its last key,
 * so such a call also sweeps for finished keys every SWEEP_MS and fetches
 * those.
 */
import { GATHER_CHUNK } from './fetch.ts';
import type { KeyBook, KeyState } from './keys.ts';

/** How often a get that keeps copies fetches the keys finished since (a call shorter than this never sweeps). */
const SWEEP_MS = 250;

/** What gathering needs of the client. */
export interface GatherLink {
  readonly book: KeyBook;
  /** The values of these keys, all finished (fetch.ts). */
  fetch(states: KeyState[]): Promise<unknown[]>;
}

/** The values of `states`, in order; rejects with the first error. `keepCopies`: see KeyState.copy. */
export function waitAndFetch(link: GatherLink, states: readonly KeyState[], keepCopies = false): Promise<unknown[]> {
  const n = states.length;
  // About a 64th at a time (at most GATHER_CHUNK): the first values move while the rest are made (64 values of 16 MiB: each as it is made).
  const size = Math.max(1, Math.min(GATHER_CHUNK, Math.ceil(n / 64)));
  const out: unknown[] = new Array(n);
  // Per key: 0 not asked for yet, 1 asked for, 2 here.
  const got = new Uint8Array(n);
  // Keys before this one are all asked for (where a sweep starts).
  let low = 0;
  let left = n;
  return new Promise<unknown[]>((resolve, reject) => {
    if (n === 0) return resolve(out);
    let settled = false;
    let sweeper: NodeJS.Timeout | null = null;
    const end = (err: unknown): void => {
      if (settled) return;
      settled = true;
      if (sweeper) clearInterval(sweeper);
      if (err === null) resolve(out);
      else reject(err);
    };
    const take = (idx: number[]): void => {
      if (settled || idx.length === 0) return;
      for (const i of idx) got[i] = 1;
      const asked = idx.map((i) => states[i] as KeyState);
      link.fetch(asked).then((values) => {
        // A call already failed keeps nothing (its copies are cleared).
        if (settled) return;
        for (let j = 0; j < idx.length; j++) {
          const i = idx[j] as number;
          out[i] = values[j];
          got[i] = 2;
          if (keepCopies) (asked[j] as KeyState).copy = values[j];
        }
        left -= idx.length;
        if (left === 0) end(null);
      }, end);
    };
    // One waiter per chunk (no key is waited on twice); any chunk's error fails the call at once.
    for (let from = 0; from < n; from += size) {
      const to = Math.min(n, from + size);
      link.book.wait(states.slice(from, to)).then(() => {
        const idx: number[] = [];
        for (let i = from; i < to; i++) if (got[i] === 0) idx.push(i);
        take(idx);
      }, end);
    }
    if (keepCopies && !settled) {
      sweeper = setInterval(() => {
        while (low < n && got[low] !== 0) low++;
        const idx: number[] = [];
        for (let i = low; i < n; i++) if (got[i] === 0 && (states[i] as KeyState).status === 'finished') idx.push(i);
        take(idx);
      }, SWEEP_MS);
    }
  });
}
