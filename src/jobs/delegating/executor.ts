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
import { packStepArgs, STEP_ARGS_ENV, type StepSpec } from '../step/spec.ts';
import { Inbox, retriesConfig, retriesEnabled } from '../executors/common.ts';
import { coordinatorConfig, StepCoordinator } from './coordinator.ts';
import type { StepHandler, StepHandlerContext, StepHealth } from './handler.ts';


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
}

/** Defines an executor that runs each step through a StepHandler. */
export function stepDelegatingExecutor<C extends StepDelegatingConfig>(opts: StepDelegatingOptions<C>): ExecutorDefinition<C> {
  return executor<C>({ name: opts.name, configSchema: opts.configSchema, requirements: ['reconstructable-job'] }, ({ config }) => ({
    execute: (ctx) => runDelegated(ctx, config, opts.handler(config, ctx), config.maxConcurrent ?? opts.defaultMaxConcurrent ?? 4),
  }));
}

/** A step's process is gone, or never reported its end: the handler's reason. */
export class StepHealthError extends WeftError {
  override name = 'StepHealthError';
}

/** How long a step whose connection closed early may stay healthy before it counts as lost. */
const LOST_CHECKS = 10;
const LOST_CHECK_MS = 200;

interface Attempt {
  ctx: StepHandlerContext & { finished: boolean; waiting: number };
  step: PlannedStep;
  attempt: number;
  /** Started ahead: its inputs do not exist yet. */
  early: boolean;
  launched: boolean;
  started: boolean;
  /** Its last event (success, failure, retry) is in, or the loop failed it. */
  ended: boolean;
  /** Why its connection closed before it ended, if it did. */
  lost: string | null;
  lostChecks: number;
  checking: boolean;
  nextCheck: number;
}

type Item =
  | { a: Attempt; evs: RunEvent[] }
  | { a: Attempt; done: true }
  | { a: Attempt; lost: string }
  | { a: Attempt; launched: true }
  | { a: Attempt; launchError: unknown }
  | { a: Attempt; health: StepHealth }
  | { engine: RunEvent };

async function* runDelegated(ctx: ExecutionContext, config: StepDelegatingConfig, handler: StepHandler, maxConcurrent: number): AsyncGenerator<RunEvent> {
  const location = ctx.location;
  if (!location) throw new WeftError(`the ${handler.name} executor needs the code location of the job`);
  const { runId } = ctx;
  const inbox = new Inbox<Item>();
  const logEngine = (message: string, data?: Record<string, unknown>): void => inbox.push({ engine: ctx.engineEvent(message, data) });
  const coordinator = new StepCoordinator(runId, config.coordinator, (m) => logEngine(m));
  const active = ctx.activeExecution();
  const retries = retriesEnabled(config.retries);
  const intervalMs = config.healthCheckIntervalSeconds * 1000;
  const runConfig = ctx.runConfig.ops === undefined ? {} : { ops: ctx.runConfig.ops };
  const pending: PlannedStep[] = [];
  /** Steps not ready whose upstream steps run: started ahead when slots are free. */
  const ahead: PlannedStep[] = [];
  // Waiting steps by priority (higher first), then in plan order.
  const order = new Map(ctx.plan.steps.map((s, i) => [s.key, i]));
  const firstToRun = (x: PlannedStep, y: PlannedStep): number => y.priority - x.priority || (order.get(x.key) ?? 0) - (order.get(y.key) ?? 0);
  const running = new Map<string, Attempt>();
  const terminations: Promise<void>[] = [];

  // A step holds its slot until it is released (it said done, or it is gone): a warm process is free again by then.
  const underLimits = (step: PlannedStep): boolean => {
    for (const l of config.tagConcurrencyLimits) {
      if (!matches(step, l)) continue;
      if ([...running.values()].filter((a) => matches(a.step, l)).length >= l.limit) return false;
    }
    return true;
  };

  const launch = (step: PlannedStep, waiting: number, early = false): void => {
    const attempt = active.attempt(step.key);
    const spec: StepSpec = { runId, module: location.module, jobName: location.jobName, stepKey: step.key, attempt, retries, runConfig };
    const token = coordinator.token(step.key, attempt);
    const hctx = {
      runId,
      step,
      stepKey: step.key,
      attempt,
      spec,
      token,
      signal: ctx.signal,
      waiting,
      finished: false,
      weftStep: async (o: { module?: string } = {}) => ({
        args: ['step'],
        env: {
          // msgpackr's native string decoder only pays off on large messages; loading it costs every step's start about 15 ms.
          MSGPACKR_NATIVE_ACCELERATION_DISABLED: 'true',
          [STEP_ARGS_ENV]: packStepArgs({ spec: { ...spec, module: o.module ?? spec.module }, coordinator: await coordinator.url(), token }),
        },
      }),
      attach: (channel: Parameters<StepHandlerContext['attach']>[0]) => coordinator.attach(channel, step.key, attempt),
      log: (message: string, data?: Record<string, unknown>) => logEngine(message, { step: step.key, attempt, ...data }),
    };
    const a: Attempt = { ctx: hctx, step, attempt, early, launched: false, started: false, ended: false, lost: null, lostChecks: 0, checking: false, nextCheck: Date.now() + intervalMs };
    running.set(step.key, a);
    coordinator.expect(
      step.key,
      attempt,
      {
        inputs: () => (handler.ownInputs ? [] : ctx.inputBytesFor(step)),
        connected: () => {},
        events: (evs) => inbox.push({ a, evs }),
        done: () => inbox.push({ a, done: true }),
        lost: (why) => inbox.push({ a, lost: why }),
      },
      !early,
    );
    call(() => handler.launch(hctx)).then(
      () => inbox.push({ a, launched: true }),
      (launchError: unknown) => inbox.push({ a, launchError }),
    );
  };

  /**
   * The attempt is over: the handler cleans up after it (awaited before the
   * run ends). `finished`: it reported its end and is leaving on its own.
   */
  const release = (a: Attempt, finished: boolean): void => {
    if (running.get(a.step.key) !== a) return;
    running.delete(a.step.key);
    coordinator.forget(a.step.key, a.attempt);
    a.ctx.finished = finished;
    terminations.push(call(() => handler.terminate(a.ctx)).catch((err: unknown) => logEngine(`could not clean up after step ${a.step.key}: ${(err as Error).message}`, { step: a.step.key })));
  };

  /**
   * Fails an attempt that did not report its end (or retries it, per its
   * policy). One started ahead never ran: it is only dropped, and the step
   * starts again once its inputs exist.
   */
  const fail = (a: Attempt, err: Error): RunEvent | null => {
    if (a.early) {
      a.ended = true;
      logEngine(`the process started ahead for step ${a.step.key} is gone (${err.message}); the step starts again once its inputs exist`, { step: a.step.key });
      return null;
    }
    a.ended = true;
    const ev = failureOrRetry({ runId, step: a.step, inputs: [], attempt: a.attempt, retries, signal: ctx.signal }, err);
    delete ev.pid;
    active.handle(ev);
    return ev;
  };

  const onAbort = (): void => {
    for (const a of running.values()) coordinator.cancel(a.step.key, a.attempt);
  };
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  try {
    await handler.prepare?.({ runId, steps: ctx.plan.steps, signal: ctx.signal, log: logEngine });
    while (!ctx.signal.aborted) {
      for (const step of active.ready()) {
        const early = running.get(step.key);
        if (early?.early) {
          // Started ahead: its inputs exist now.
          early.early = false;
          coordinator.go(step.key, early.attempt);
        } else pending.push(step);
      }
      pending.sort(firstToRun);
      if (config.startAhead) ahead.push(...active.upcoming());
      yield* active.drainEvents();
      // Steps started ahead that will not run after all (upstream failed or skipped): stopped unseen.
      for (const a of [...running.values()]) {
        const st = active.statusOf(a.step.key);
        if (a.early && st !== 'pending') release(a, false);
      }
      // Start what the limits allow, highest priority first.
      let waiting = -1;
      for (let i = 0; i < pending.length && running.size < maxConcurrent; ) {
        const step = pending[i] as PlannedStep;
        if (!underLimits(step)) {
          i++;
          continue;
        }
        pending.splice(i, 1);
        if (waiting < 0) waiting = pending.length + active.stepsWith('pending').length;
        else waiting = Math.max(0, waiting - 1);
        launch(step, waiting);
      }
      // Then steps whose upstream steps are running, with the slots left.
      for (let i = 0; i < ahead.length && running.size < maxConcurrent; ) {
        const step = ahead[i] as PlannedStep;
        if (active.statusOf(step.key) !== 'pending' || running.has(step.key)) {
          ahead.splice(i, 1);
          continue;
        }
        if (!underLimits(step)) {
          i++;
          continue;
        }
        ahead.splice(i, 1);
        launch(step, Math.max(0, waiting), true);
      }
      if (running.size === 0 && pending.length === 0 && inbox.size === 0) {
        if (active.isComplete) break;
        const wait = active.nextRetryIn();
        if (wait === null) break;
        await inbox.wait(wait, ctx.signal);
        continue;
      }
      // Health checks that are due, answered through the inbox.
      const now = Date.now();
      let nextCheck = Infinity;
      for (const a of running.values()) {
        if (a.ended || !a.launched || a.checking) continue;
        if (a.nextCheck > now) {
          nextCheck = Math.min(nextCheck, a.nextCheck);
          continue;
        }
        a.checking = true;
        call(() => handler.checkHealth(a.ctx)).then(
          (health) => inbox.push({ a, health }),
          (err: unknown) => {
            logEngine(`the health check of step ${a.step.key} failed: ${(err as Error).message}`, { step: a.step.key });
            inbox.push({ a, health: { healthy: true } });
          },
        );
      }
      if (inbox.size === 0) {
        const retryIn = active.nextRetryIn();
        const checkIn = nextCheck === Infinity ? null : Math.max(0, nextCheck - now);
        await inbox.wait(retryIn === null ? checkIn : checkIn === null ? retryIn : Math.min(retryIn, checkIn), ctx.signal);
      }
      while (inbox.size > 0) {
        const item = inbox.shift() as Item;
        if ('engine' in item) {
          yield item.engine;
          continue;
        }
        const a = item.a;
        if ('evs' in item) {
          for (const ev of item.evs) {
            if (a.ended) break;
            if (ev.error?.stack) ev.error.stack = mapStack(ev.error.stack);
            if (ev.type === 'STEP_START' && a.started) {
              // Run again by another process (a queue worker took it over from one that died): said once, not as a second start.
              logEngine(`step ${a.step.key} started again in process ${ev.pid ?? '?'}: the process running it was lost`, { step: a.step.key, attempt: a.attempt });
              continue;
            }
            if (ev.type === 'STEP_START') a.started = true;
            if (ev.type === 'STEP_SUCCESS' || ev.type === 'STEP_FAILURE' || ev.type === 'STEP_UP_FOR_RETRY') a.ended = true;
            active.handle(ev);
            yield ev;
          }
        } else if ('done' in item) {
          const finished = a.ended;
          const ev = a.ended ? null : fail(a, new StepHealthError(`step ${a.step.key} ended without reporting a result`));
          if (ev) yield ev;
          release(a, finished);
        } else if ('lost' in item) {
          if (a.ended) release(a, true);
          else {
            a.lost = item.lost;
            a.nextCheck = 0;
          }
        } else if ('launched' in item) {
          // Health checks start now (the next one is due an interval from now).
          a.launched = true;
        } else if ('launchError' in item) {
          if (!a.ended) {
            const err = item.launchError instanceof Error ? item.launchError : new Error(String(item.launchError));
            const ev = fail(a, Object.assign(new StepHealthError(`step ${a.step.key} could not be launched by the ${handler.name} handler: ${err.message}`), { stack: err.stack }));
            if (ev) yield ev;
          }
          release(a, false);
        } else {
          a.checking = false;
          if (a.ended || running.get(a.step.key) !== a) continue;
          const h = item.health;
          if (!h.healthy) {
            const ev = fail(a, new StepHealthError(h.reason));
            if (ev) yield ev;
            release(a, false);
          } else if (a.lost !== null) {
            if (++a.lostChecks >= LOST_CHECKS) {
              const ev = fail(a, new StepHealthError(`step ${a.step.key} lost its connection to the run's coordinator (${a.lost}) and did not report its end`));
              if (ev) yield ev;
              release(a, false);
            } else a.nextCheck = Date.now() + LOST_CHECK_MS;
          } else a.nextCheck = Date.now() + intervalMs;
        }
      }
    }
    if (ctx.signal.aborted) {
      for (const a of [...running.values()]) {
        if (a.started && !a.ended) yield event('STEP_FAILURE', runId, a.step.key, `step ${a.step.key} was stopped: the run was canceled`, { attempt: a.attempt, error: { name: 'CancelledError', message: 'the run was canceled' } });
        a.ended = true;
        release(a, false);
      }
      active.abandon();
    }
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    for (const a of [...running.values()]) release(a, false);
    await Promise.all(terminations);
    await handler.close?.().catch(() => {});
    await coordinator.close();
  }
}

/** Calls a handler method: a synchronous throw becomes a rejection, as from an async method. */
function call<T>(f: () => Promise<T>): Promise<T> {
  return new Promise<T>((resolve) => resolve(f()));
}

function matches(step: PlannedStep, l: { key: string; value?: string | undefined }): boolean {
  const v = step.tags[l.key];
  return v !== undefined && (l.value === undefined || v === l.value);
}
