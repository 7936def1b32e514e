/** Config pieces and helpers shared by weft's executors. */
import { z } from 'zod';

/** Dagster's form: `retries: { enabled: {} }` (default) or `{ disabled: {} }`. */
export const retriesConfig = z
  .union([z.object({ enabled: z.object({}).strict() }).strict(), z.object({ disabled: z.object({}).strict() }).strict()])
  .default({ enabled: {} });

export function retriesEnabled(r: z.infer<typeof retriesConfig>): boolean {
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
