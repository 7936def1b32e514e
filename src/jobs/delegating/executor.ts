/**
 * The step-delegating executor: one control loop for every executor that
 * runs each step in a process of its own. A StepHandler (handler.ts) starts,
 * checks and stops one step; this loop decides everything else:
 *
 * - which steps are ready (ActiveExecution), higher `weft/priority` first;
 * - `maxConcurrent` and `tagConcurrencyLimits`;
 * - retries: the op's retry policy or a RetryRequested, and a step whose
 *   process died counts as a failed attempt (executor `retries` can turn
 *   retries off);
 * - a health check of every running step every few seconds, and at once when
 *   a step's connection closes before it ended: an unhealthy step fails with
 *   the handler's reason;
 * - cancellation: every running step is terminated;
 * - no leftovers: every launched attempt is terminated once, and the run
 *   waits for that before it ends.
 *
 * Steps connect back to the run's coordinator (coordinator.ts), get their
 * inputs from it and stream their events to it while they run; outputs
 * come back as msgpack and stay in this process for the steps downstream.
 */
import type { z } from 'zod';
import { executor, loadedExecution, type ExecutionContext, type ExecutorDefinition } from '../executor.ts';
import type { StepDelegatingConfig } from './config.ts';
import type { StepHandler } from './handler.ts';

export { stepDelegatingConfig, type StepDelegatingConfig } from './config.ts';

export interface StepDelegatingOptions<C extends StepDelegatingConfig> {
  name: string;
  /** `stepDelegatingConfig().extend({ ... })` with the executor's own fields, or a function building it (see ExecutorOptions). */
  configSchema: z.ZodType<C> | (() => z.ZodType<C>);
  /** Makes the handler of one run (may import it then: see loadedExecution). */
  handler(config: C, ctx: ExecutionContext): StepHandler | Promise<StepHandler>;
  /** Steps at once when the config sets no `maxConcurrent` (default 4). */
  defaultMaxConcurrent?: number;
  /** What a run whose launcher died left (ExecutorDefinition.cleanupRun). */
  cleanupRun?: (config: C, runId: string) => Promise<number>;
}

/** Defines an executor that runs each step through a StepHandler. */
export function stepDelegatingExecutor<C extends StepDelegatingConfig>(opts: StepDelegatingOptions<C>): ExecutorDefinition<C> {
  return executor<C>({ name: opts.name, configSchema: opts.configSchema, requirements: ['reconstructable-job'], ...(opts.cleanupRun ? { cleanupRun: opts.cleanupRun } : {}) }, ({ config }) => ({
    execute: (ctx) =>
      loadedExecution(
        (async () => {
          const [{ runDelegated }, handler] = await Promise.all([import('./loop.ts'), opts.handler(config, ctx)]);
          return runDelegated(ctx, config, handler, config.maxConcurrent ?? opts.defaultMaxConcurrent ?? 4);
        })(),
      ),
  }));
}

