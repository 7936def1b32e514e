/**
 * The step-delegating executor's control loop (see executor.ts): loaded when
 * a run starts, so that a code location naming a delegating executor loads
 * neither the loop, its coordinator nor their WebSocket server.
 */
import { event, type RunEvent } from '../events.ts';
import type { ExecutionContext } from '../executor.ts';
import type { PlannedStep } from '../plan.ts';
import { failureOrRetry } from '../step-runner.ts';
import { mapStack } from '../step/bundle.ts';
import type { StepSpec } from '../step/spec.ts';
import { WeftError } from '../../errors.ts';
import { Inbox, retriesEnabled } from '../executors/common.ts';
import type { StepDelegatingConfig } from './config.ts';
import { StepCoordinator } from './coordinator.ts';
import type { StepHandler, StepHealthError } from './handler.ts';
import { StepSlots } from './slots.ts';
import { DelegatedAttempt, type AttemptOwner } from './attempt.ts';

type Item = { a: DelegatedAttempt; evs: RunEvent[] } | { a: DelegatedAttempt; failure: StepHealthError } | { a: DelegatedAttempt; released: Promise<void> } | { engine: RunEvent };

export async function* runDelegated(ctx: ExecutionContext, config: StepDelegatingConfig, handler: StepHandler, maxConcurrent: number): AsyncGenerator<RunEvent> {
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

