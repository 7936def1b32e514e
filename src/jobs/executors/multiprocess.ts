/**
 * Runs each step in its own OS process, on the step-delegating loop with the
 * fork handler (handlers/fork.ts). Outputs cross processes as msgpack (no
 * shared filesystem). `warm` mode reuses processes for later steps of the
 * run instead of one per step.
 *
 * A step process that crashes or is killed fails its step with the exit
 * code or signal. Cancelling the run stops every step process.
 */
import { availableParallelism } from 'node:os';
import type { z } from 'zod';
import { lazySchemas } from '../../util/zod.ts';
import type { ExecutorDefinition } from '../executor.ts';
import { stepDelegatingConfig } from '../delegating/config.ts';
import { stepDelegatingExecutor } from '../delegating/executor.ts';
import { WeftError } from '../../errors.ts';

export const multiprocessConfig = lazySchemas((z) =>
  stepDelegatingConfig().extend({
    /** isolated: a fresh process per step (default); warm: processes are reused, within the run and by later runs in this process. */
    mode: z.enum(['isolated', 'warm']).default('isolated'),
  }),
);
export type MultiprocessConfig = z.infer<ReturnType<typeof multiprocessConfig>>;

export const multiprocessExecutor: ExecutorDefinition<MultiprocessConfig> = stepDelegatingExecutor({
  name: 'multiprocess',
  configSchema: multiprocessConfig,
  defaultMaxConcurrent: availableParallelism(),
  handler: async (config, ctx) => {
    if (!ctx.location) throw new WeftError('the multiprocess executor needs the code location of the job');
    const { forkHandler } = await import('../handlers/fork.ts');
    return forkHandler(ctx.location, { mode: config.mode, maxConcurrent: config.maxConcurrent ?? availableParallelism() });
  },
});
