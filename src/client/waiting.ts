/**
 * Waiting on many futures at once, as Dask's `wait` and `as_completed`. A
 * future counts as completed once its task finished, erred or was cancelled
 * (its `done()` settled either way); its value is not fetched.
 */
import { WeftError } from '../errors.ts';
import type { Future } from './future.ts';

/** `wait` ran out of time before its futures completed. */
export class WaitTimeoutError extends WeftError {
  override name = 'WaitTimeoutError';
}

export interface WaitOptions {
  /** 'ALL_COMPLETED' (default) or 'FIRST_COMPLETED'. */
  returnWhen?: 'ALL_COMPLETED' | 'FIRST_COMPLETED';
  /** Seconds to wait at most; then WaitTimeoutError. */
  timeout?: number;
}

/**
 * A promise that settles when the future completes, whatever the outcome.
 * It resolves to nothing: a Future is thenable, and a promise resolved with
 * one would wait for (and fetch) its value.
 */
function completed<T>(f: Future<T>): Promise<void> {
  return f.done().then(
    () => undefined,
    () => undefined,
  );
}

function isCompleted(f: Future): boolean {
  return f.status === 'finished' || f.status === 'error' || f.status === 'cancelled';
}

/**
 * Waits until all the futures (or, with `returnWhen: 'FIRST_COMPLETED'`, the
 * first of them) have completed, and returns which have and which have not.
 */
export async function wait<T>(futures: readonly Future<T>[], opts: WaitOptions = {}): Promise<{ done: Future<T>[]; notDone: Future<T>[] }> {
  const all = futures.map(completed);
  const until = opts.returnWhen === 'FIRST_COMPLETED' && all.length > 0 ? Promise.race(all) : Promise.all(all);
  let timer: NodeJS.Timeout | undefined;
  const limit =
    opts.timeout === undefined
      ? null
      : new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new WaitTimeoutError(`${futures.filter((f) => !isCompleted(f)).length} of ${futures.length} futures did not complete within ${opts.timeout} s`)), (opts.timeout as number) * 1000);
        });
  try {
    await (limit ? Promise.race([until, limit]) : until);
  } finally {
    clearTimeout(timer);
  }
  return { done: futures.filter(isCompleted), notDone: futures.filter((f) => !isCompleted(f)) };
}

/**
 * The futures in the order they complete, as an async iterator; more may be
 * added while iterating (`add`). Iteration ends once every future added has
 * been yielded.
 */
export class AsCompleted<T = unknown> implements AsyncIterable<Future<T>> {
  private readonly ready: Future<T>[] = [];
  private pending = 0;
  private wake: (() => void) | null = null;

  constructor(futures: Iterable<Future<T>> = []) {
    for (const f of futures) this.add(f);
  }

  /** Adds a future: it is yielded once it completes. */
  add(f: Future<T>): void {
    this.pending++;
    void completed(f).then(() => {
      this.pending--;
      this.ready.push(f);
      this.wake?.();
      this.wake = null;
    });
  }

  /** Futures added and not yet yielded. */
  get count(): number {
    return this.pending + this.ready.length;
  }

  // Not an async generator: `yield` there awaits a thenable, and a Future is one (it would fetch the value).
  [Symbol.asyncIterator](): AsyncIterator<Future<T>> {
    return {
      next: async (): Promise<IteratorResult<Future<T>>> => {
        for (;;) {
          const f = this.ready.shift();
          if (f) return { value: f, done: false };
          if (this.pending === 0) return { value: undefined, done: true };
          await new Promise<void>((resolve) => (this.wake = resolve));
        }
      },
    };
  }
}

/** Iterates over the futures as they complete (see AsCompleted). */
export function asCompleted<T>(futures: Iterable<Future<T>>): AsCompleted<T> {
  return new AsCompleted(futures);
}
