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
import { lazySchemas } from '../../util/zod.ts';
import { WeftError } from '../../errors.ts';
import { event, type RunEvent } from '../events.ts';
import { executor, type ExecutionContext, type ExecutorDefinition } from '../executor.ts';
import type { PlannedStep } from '../plan.ts';
import { failureOrRetry } from '../step-runner.ts';
import { mapStack } from '../step/bundle.ts';
import type { StepSpec } from '../step/spec.ts';
import { Inbox, retriesConfig, retriesEnabled } from '../executors/common.ts';
import { coordinatorConfig, StepCoordinator } from './coordinator.ts';
import type { StepHandler } from './handler.ts';
import { StepSlots } from './slots.ts';
import { DelegatedAttempt, type AttemptOwner, type StepHealthError } from './attempt.ts';


/** The config every step-delegating executor takes (built on first use); executors extend it with their own fields. */
export const stepDelegatingConfig = lazySchemas((z) =>
  z
  .object({
    /** Steps running at once (default: the executor's, e.g. the number of CPUs). */
    maxConcurrent: z.number().int().min(1).max(1024).optional(),
    /** At most `limit` running steps whose op has tag `key` (with `value`, if given). */
    tagConcurrencyLimits: z.array(z.object({ key: z.string().min(1), value: z.string().optional(), limit: z.number().int().min(1) }).strict()).default([]),
    retries: retriesConfig(),
    /** Where steps connect back to: 127.0.0.1 on a free port unless set. */
    coordinator: coordinatorConfig(),
    /** Seconds between health checks of a running step. */
    healthCheckIntervalSeconds: z.number().positive().max(3600).default(5),
    /**
     * Start the process of a step whose upstream steps are all running, within
     * `maxConcurrent`; it gets its inputs once they exist. Its start-up (a
     * container's, a pod's) then overlaps the work before it. A step that will
     * not run after all (its upstream failed) is stopped unseen.
     */
    startAhead: z.boolean().default(true),
  })
  .strict(),
);
export type StepDelegatingConfig = z.infer<ReturnType<typeof stepDelegatingConfig>>;

export interface StepDelegatingOptions<C extends StepDelegatingConfig> {
  name: string;
  /** `stepDelegatingConfig().extend({ ... })` with the executor's own fields, or a function building it (see ExecutorOptions). */
  configSchema: z.ZodType<C> | (() => z.ZodType<C>);
  /** Makes the handler of one run. */
  handler(config: C, ctx: ExecutionContext): StepHandler;
  /** Steps at once when the config sets no `maxConcurrent` (default 4). */
  defaultMaxConcurrent?: number;
  /** What a run whose launcher died left (ExecutorDefinition.cleanupRun). */
  cleanupRun?: (config: C, runId: string) => Promise<number>;
}

/** Defines an executor that runs each step through a StepHandler. */
export function stepDelegatingExecutor<C extends StepDelegatingConfig>(opts: StepDelegatingOptions<C>): ExecutorDefinition<C> {
  return executor<C>({ name: opts.name, configSchema: opts.configSchema, requirements: ['reconstructable-job'], ...(opts.cleanupRun ? { cleanupRun: opts.cleanupRun } : {}) }, ({ config }) => ({
    execute: (ctx) => runDelegated(ctx, config, opts.handler(config, ctx), config.maxConcurrent ?? opts.defaultMaxConcurrent ?? 4),
  }));
}

type Item = { a: DelegatedAttempt; evs: RunEvent[] } | { a: DelegatedAttempt; failure: StepHealthError } | { a: DelegatedAttempt; released: Promise<void> } | { engine: RunEvent };

async function* runDelegated(ctx: ExecutionContext, config: StepDelegatingConfig, handler: StepHandler, maxConcurrent: number): AsyncGenerator<RunEvent> {
  const location = ctx.location;
  if (!location) throw new WeftError(`the ${handler.name} executor needs the code location of the job`);
  const { runId } = ctx;
  const inbox = new Inbox<Item>();
  const logEngine = (message: string, data?: Record<string, unknown>): void => inbox.push({ engine: ctx.engineEvent(message, data) });
  const coordinator = new StepCoordinator(runId, config.coordinator, (m) => logEngine(m));
  const active = ctx.activeExecution();
  const retries = retriesEnabled(config.retries);
  const runConfig = ctx.runConfig.ops === undefined ? {} : { ops: ctx.runConfig.ops };
  const slots = new StepSlots(active, { maxConcurrent, tagConcurrencyLimits: config.tagConcurrencyLimits, startAhead: config.startAhead });
  /** Attempts holding a slot: until released (it said done, or it is gone), when a warm process is free again. */
  const running = new Map<string, DelegatedAttempt>();
  const terminations: Promise<void>[] = [];
  const owner: AttemptOwner = {
    events: (a, evs) => inbox.push({ a, evs }),
    failed: (a, failure) => inbox.push({ a, failure }),
    released: (a, released) => inbox.push({ a, released }),
  };

  const launch = (step: PlannedStep, waiting: number, early = false): void => {
    const spec: StepSpec = { runId, module: location.module, jobName: location.jobName, stepKey: step.key, attempt: active.attempt(step.key), retries, runConfig, ...(ctx.opSelection ? { opSelection: [...ctx.opSelection] } : {}) };
    const a = new DelegatedAttempt(
      { handler, coordinator, step, spec, signal: ctx.signal, waiting, early, healthCheckMs: config.healthCheckIntervalSeconds * 1000, inputs: () => (handler.ownInputs ? [] : ctx.inputBytesFor(step)), log: logEngine },
      owner,
    );
    running.set(step.key, a);
    a.start();
  };

  /**
   * An attempt that did not report its end fails (or is retried, per its
   * policy). One started ahead never ran: it is only dropped, and the step
   * starts again once its inputs exist.
   */
  const fail = (a: DelegatedAttempt, err: Error): RunEvent | null => {
    if (a.early) {
      logEngine(`the process started ahead for step ${a.step.key} is gone (${err.message}); the step starts again once its inputs exist`, { step: a.step.key });
      return null;
    }
    const ev = failureOrRetry({ runId, step: a.step, inputs: [], attempt: a.attempt, retries, signal: ctx.signal }, err);
    delete ev.pid;
    active.handle(ev);
    return ev;
  };

  const onAbort = (): void => {
    for (const a of running.values()) a.cancel();
  };
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  try {
    await handler.prepare?.({ runId, steps: ctx.plan.steps, loadedOutputs: ctx.loadedOutputs, signal: ctx.signal, log: logEngine });
    while (!ctx.signal.aborted) {
      for (const act of slots.next(Date.now())) {
        if (act.kind === 'launch') launch(act.step, act.waiting, act.early);
        else if (act.kind === 'go') running.get(act.key)?.go();
        else {
          const a = running.get(act.key);
          running.delete(act.key);
          if (act.for !== null) logEngine(`step ${act.key}, started ahead, gives its slot to step ${act.for}, which is ready; it starts again later`, { step: act.key });
          a?.stop();
        }
      }
      yield* active.drainEvents();
      if (slots.held === 0 && slots.waiting === 0 && inbox.size === 0) {
        if (active.isComplete) break;
        const wait = active.nextRetryIn();
        if (wait === null) break;
        await inbox.wait(wait, ctx.signal);
        continue;
      }
      // Each attempt checks its own health; this loop wakes for what they report, or a retry that is due.
      if (inbox.size === 0) await inbox.wait(active.nextRetryIn(), ctx.signal);
      while (inbox.size > 0) {
        const item = inbox.shift() as Item;
        if ('engine' in item) {
          yield item.engine;
        } else if ('evs' in item) {
          for (const ev of item.evs) {
            if (ev.error?.stack) ev.error.stack = mapStack(ev.error.stack);
            active.handle(ev);
            yield ev;
          }
        } else if ('failure' in item) {
          const ev = fail(item.a, item.failure);
          if (ev) yield ev;
        } else {
          if (running.get(item.a.step.key) === item.a) {
            running.delete(item.a.step.key);
            slots.release(item.a.step.key);
          }
          terminations.push(item.released);
        }
      }
    }
    if (ctx.signal.aborted) {
      for (const a of [...running.values()]) {
        if (a.started && !a.ended) yield event('STEP_FAILURE', runId, a.step.key, `step ${a.step.key} was stopped: the run was canceled`, { attempt: a.attempt, error: { name: 'CancelledError', message: 'the run was canceled' } });
        a.stop();
      }
      active.abandon();
    }
    // Refusals counted but not logged one by one are said while the run can still say them.
    coordinator.flushRefusals();
    for (const item of inbox.drain()) {
      if ('engine' in item) yield item.engine;
      else if ('released' in item) terminations.push(item.released);
    }
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    for (const a of running.values()) a.stop();
    // Every attempt's termination, including those released since the loop last looked.
    for (const item of inbox.drain()) if ('released' in item) terminations.push(item.released);
    await Promise.all(terminations);
    await handler.close?.().catch(() => {});
    await coordinator.close();
  }
}

