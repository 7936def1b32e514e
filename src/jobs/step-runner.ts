/**
 * Runs one attempt of one step in the current process and yields its events
 * as they happen (logs while the op runs, not at the end): STEP_RESTARTED on
 * a retry, STEP_START, LOG..., STEP_OUTPUT per output, then STEP_SUCCESS,
 * STEP_FAILURE or STEP_UP_FOR_RETRY.
 */
import { serializeError } from '../errors.ts';
import type { OpContext, StepLog } from './definitions.ts';
import { DEFAULT_OUTPUT, retryDelay } from './retry.ts';
import { isRetryRequested } from './errors.ts';
import { event, type LogLevel, type RunEvent } from './events.ts';
import type { PlannedStep } from './plan.ts';

export interface StepAttempt {
  runId: string;
  step: PlannedStep;
  /** Input values, in the op's input order. */
  inputs: unknown[];
  attempt: number;
  /** false: a failure is final whatever the retry policy (an executor with retries disabled). */
  retries: boolean;
  signal: AbortSignal;
}

/** A queue the op's logs go into while its compute function runs. */
class Channel {
  private items: RunEvent[] = [];
  private wake: (() => void) | null = null;

  push(ev: RunEvent): void {
    this.items.push(ev);
    this.wake?.();
    this.wake = null;
  }

  take(): RunEvent[] {
    const out = this.items;
    this.items = [];
    return out;
  }

  /** Resolves when something is pushed (or at once if something is waiting). */
  next(): Promise<void> {
    if (this.items.length > 0) return Promise.resolve();
    return new Promise((resolve) => (this.wake = resolve));
  }
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** Wakes the loop that waits on an async op; never yielded. */
const WAKE = event('ENGINE_EVENT', '', null, '');

export async function* runStepAttempt(a: StepAttempt): AsyncGenerator<RunEvent> {
  const { runId, step, attempt } = a;
  const key = step.key;
  const op = step.node.op;
  const extra = { attempt, pid: process.pid };
  // Numbered as ctx.attempt and the events' `attempt` are: 0 is the first attempt.
  if (attempt > 0) yield event('STEP_RESTARTED', runId, key, `step ${key}: attempt ${attempt} (retry ${attempt})`, extra);
  yield event('STEP_START', runId, key, `started step ${key}`, extra);

  const channel = new Channel();
  const logAt =
    (level: LogLevel) =>
    (message: string, data?: Record<string, unknown>): void =>
      channel.push(event('LOG', runId, key, String(message), { ...extra, level, ...(data ? { data } : {}) }));
  const log: StepLog = { debug: logAt('debug'), info: logAt('info'), warn: logAt('warn'), error: logAt('error') };
  const ctx: OpContext = { log, config: step.config, runId, stepKey: key, opName: op.name, attempt, signal: a.signal };

  // Synchronous ops (most) need no waiting: their logs are already in the channel.
  let outcome: Outcome;
  try {
    const r = op.fn(ctx, ...a.inputs);
    outcome = { ok: true, value: r };
  } catch (error) {
    outcome = { ok: false, error };
  }
  if (outcome.ok && outcome.value instanceof Promise) {
    // Async: yield its logs while it runs.
    let settled: Outcome | null = null;
    (outcome.value as Promise<unknown>).then(
      (value) => {
        settled = { ok: true, value };
        channel.push(WAKE);
      },
      (error: unknown) => {
        settled = { ok: false, error };
        channel.push(WAKE);
      },
    );
    while (settled === null) {
      await channel.next();
      for (const ev of channel.take()) if (ev !== WAKE) yield ev;
    }
    outcome = settled as Outcome;
  }
  for (const ev of channel.take()) if (ev !== WAKE) yield ev;

  if (!outcome.ok) {
    yield failureOrRetry(a, outcome.error);
    return;
  }
  // Outputs: the value itself, or for named outputs the object's keys.
  const outputs: [string, unknown][] = [];
  if (!op.multipleOutputs) {
    outputs.push([DEFAULT_OUTPUT, outcome.value === undefined ? null : outcome.value]);
  } else {
    const v = outcome.value;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      yield failureOrRetry(a, new TypeError(`op ${op.name} declares outputs ${Object.keys(op.outs).join(', ')}, so it must return an object with them (got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v})`), false);
      return;
    }
    const obj = v as Record<string, unknown>;
    for (const name of Object.keys(obj)) {
      if (!(name in op.outs)) {
        yield failureOrRetry(a, new TypeError(`op ${op.name} returned output ${name}, which it does not declare (outs: ${Object.keys(op.outs).join(', ')})`), false);
        return;
      }
    }
    for (const [name, def] of Object.entries(op.outs)) {
      if (obj[name] !== undefined) outputs.push([name, obj[name]]);
      else if (!def.optional) {
        yield failureOrRetry(a, new TypeError(`op ${op.name} did not produce its required output ${name}; mark it out({ optional: true }) if it may be left out`), false);
        return;
      }
    }
  }
  for (const [name, value] of outputs) yield event('STEP_OUTPUT', runId, key, `step ${key} produced output ${name}`, { ...extra, output: name, value });
  yield event('STEP_SUCCESS', runId, key, `finished step ${key}`, extra);
}

/** STEP_UP_FOR_RETRY when the policy (or a RetryRequested) allows another attempt, else STEP_FAILURE. */
export function failureOrRetry(a: StepAttempt, err: unknown, retryable = true): RunEvent {
  const key = a.step.key;
  const policy = a.step.node.op.retryPolicy;
  const error = serializeError(err);
  const extra = { attempt: a.attempt, pid: process.pid, error };
  if (retryable && a.retries && !a.signal.aborted) {
    let wait: number | null = null;
    if (isRetryRequested(err)) {
      if (a.attempt < err.maxRetries) wait = err.secondsToWait;
    } else if (policy && a.attempt < policy.maxRetries) {
      wait = retryDelay(policy, a.attempt + 1);
    }
    if (wait !== null) return event('STEP_UP_FOR_RETRY', a.runId, key, `step ${key} failed (${error.name}: ${error.message}); retrying in ${wait.toFixed(2)} s`, { ...extra, retryInSeconds: wait });
  }
  return event('STEP_FAILURE', a.runId, key, `step ${key} failed: ${error.name}: ${error.message}`, extra);
}
