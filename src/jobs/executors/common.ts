/** Config pieces and helpers shared by weft's executors. */
import type { z } from 'zod';
import { lazySchemas } from '../../util/zod.ts';

/** Dagster's form: `retries: { enabled: {} }` (default) or `{ disabled: {} }`. */
export const retriesConfig = lazySchemas((z) => z.union([z.object({ enabled: z.object({}).strict() }).strict(), z.object({ disabled: z.object({}).strict() }).strict()]).default({ enabled: {} }));

export function retriesEnabled(r: z.infer<ReturnType<typeof retriesConfig>>): boolean {
  return 'enabled' in r;
}

/** Resolves after `ms`, or at once when the signal aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** What an executor's steps report, queued for its loop, which waits for the next item. */
export class Inbox<T> {
  private items: T[] = [];
  private wake: (() => void) | null = null;

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    this.items.push(item);
    this.wake?.();
    this.wake = null;
  }

  shift(): T | undefined {
    return this.items.shift();
  }

  /** Takes every item queued. */
  drain(): T[] {
    const items = this.items;
    this.items = [];
    return items;
  }

  /** Resolves when an item is pushed, after `ms` (null: no limit), or when `signal` aborts. */
  wait(ms: number | null, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const timer = ms === null ? null : setTimeout(() => done(), ms);
      const done = (): void => {
        if (timer) clearTimeout(timer);
        signal.removeEventListener('abort', done);
        if (this.wake === done) this.wake = null;
        resolve();
      };
      this.wake = done;
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
