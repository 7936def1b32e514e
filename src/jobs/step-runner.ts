/**
 * Runs one attempt of one step in the current process and yields its events
 * as they happen (logs while the op runs, not at the end): STEP_RESTARTED on
 * a retry, STEP_START, LOG..., STEP_OUTPUT per output, then STEP_SUCCESS,
 * STEP_FAILURE or STEP_UP_FOR_RETRY. `stepAttemptEvents` yields them in
 * lists, as many as have come: a fan-out emitting 10,000 items in one go
 * costs its consumer a few awaits, not 10,000.
 */
import { serializeError } from '../errors.ts';
import type { OpContext, StepLog } from './definitions.ts';
import { DEFAULT_OUTPUT, retryDelay } from './retry.ts';
import { DynamicOutput, isDynamicOutput, itemOutput, mappingKeyProblem } from './dynamic.ts';
import { isRetryRequested } from './errors.ts';
import { event, outputEvent, stepEvent, type LogLevel, type RunEvent } from './events.ts';
import type { PlannedStep } from './plan.ts';

export interface StepAttempt {
  runId: string;
  step: PlannedStep;
  /** Input values, in the op's input order. */
  inputs: unknown[];
  attempt: number;
  /** false: a failure is final whatever the retry policy (an executor with retries disabled). */
  retries: boolean;
  /** Read only when needed (the op asks, or a failure may retry): it may be a getter that makes it. */
  readonly signal: AbortSignal;
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
  for await (const evs of stepAttemptEvents(a)) yield* evs;
}

/**
 * What one attempt's op gets and makes while it runs: its context, the
 * channel its logs and items go into, and the items emitted so far. What
 * the op asks for (its log, emit, signal) is made when it asks: most ops
 * ask for nothing, and an attempt then makes no closures (each cost an
 * allocation, and a call to name it where the code runs through tsx).
 */
class Attempt implements OpContext {
  readonly channel = new Channel();
  readonly config: unknown;
  readonly runId: string;
  readonly stepKey: string;
  readonly opName: string;
  readonly attempt: number;
  private logs: StepLog | null = null;
  private emitOne: OpContext['emit'] | null = null;
  /** Mapping keys emitted, by dynamic output. */
  private emitted: Map<string, Set<string>> | null = null;
  /** The output an item without one goes to: the op's only dynamic output (worked out with the first item). */
  private only: string | null | undefined;

  constructor(
    private readonly a: StepAttempt,
    readonly pid: number,
  ) {
    this.config = a.step.config;
    this.runId = a.runId;
    this.stepKey = a.step.key;
    this.opName = a.step.node.op.name;
    this.attempt = a.attempt;
  }

  get log(): StepLog {
    if (this.logs) return this.logs;
    const at =
      (level: LogLevel) =>
      (message: string, data?: Record<string, unknown>): void =>
        this.channel.push(event('LOG', this.runId, this.stepKey, String(message), { attempt: this.attempt, pid: this.pid, level, ...(data ? { data } : {}) }));
    return (this.logs = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') });
  }

  // Read when the op asks: where the attempt's signal is made on demand (a worker's thread), an op that never looks costs no AbortController.
  get signal(): AbortSignal {
    return this.a.signal;
  }

  // A function of its own (not a method), so that an op may take it out of the context: const { emit } = ctx.
  get emit(): OpContext['emit'] {
    return (this.emitOne ??= (mappingKey, value, o = {}) => this.emitItem(new DynamicOutput(mappingKey, value, o.output)));
  }

  /** An item of a dynamic output, checked, goes out at once as an output of its own: steps mapped over it start from it. */
  emitItem(item: DynamicOutput): void {
    const op = this.a.step.node.op;
    if (this.only === undefined) this.only = op.dynamicOutputs.size === 1 ? ([...op.dynamicOutputs][0] as string) : null;
    const output = item.output === DEFAULT_OUTPUT && this.only !== null ? this.only : item.output;
    if (!op.dynamicOutputs.has(output)) throw new TypeError(`op ${op.name} emitted an item of output ${output}, which is not one of its dynamic outputs (${[...op.dynamicOutputs].join(', ') || 'it has none: declare out: dynamicOut()'})`);
    const problem = mappingKeyProblem(item.mappingKey);
    if (problem) throw new TypeError(`op ${op.name}, dynamic output ${output}: ${problem}`);
    this.emitted ??= new Map();
    let seen = this.emitted.get(output);
    if (!seen) this.emitted.set(output, (seen = new Set()));
    if (seen.has(item.mappingKey)) throw new TypeError(`op ${op.name} emitted mapping key ${item.mappingKey} twice on output ${output}: keys are unique within an output`);
    seen.add(item.mappingKey);
    const name = itemOutput(output, item.mappingKey);
    this.channel.push(outputEvent(this.runId, this.stepKey, this.attempt, this.pid, name, item.value === undefined ? null : item.value, true));
  }
}

/** The events of runStepAttempt, in lists of those that have come (none empty). */
export async function* stepAttemptEvents(a: StepAttempt): AsyncGenerator<RunEvent[]> {
  const { runId, step, attempt } = a;
  const key = step.key;
  const op = step.node.op;
  const pid = process.pid;
  // Numbered as ctx.attempt and the events' `attempt` are: 0 is the first attempt.
  const start = stepEvent('STEP_START', runId, key, attempt, pid);
  yield attempt > 0 ? [event('STEP_RESTARTED', runId, key, `step ${key}: attempt ${attempt} (retry ${attempt})`, { attempt, pid }), start] : [start];

  const ctx = new Attempt(a, pid);
  const channel = ctx.channel;

  // Synchronous ops (most) need no waiting: their logs are already in the channel.
  let outcome: Outcome;
  try {
    let r = op.fn(ctx, ...a.inputs);
    // A generator (Dagster's yield-style op): its items go out as it yields them; its return value is its other outputs.
    if (isGenerator(r)) r = drain(r, op.name, (item) => ctx.emitItem(item));
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
      const evs = taken(channel);
      if (evs.length > 0) yield evs;
    }
    outcome = settled as Outcome;
  }
  // The rest, with the step's end.
  yield [...taken(channel), ...stepEnd(a, outcome, pid)];
}

/** The events that end an attempt: its outputs and STEP_SUCCESS, or why it failed. */
function stepEnd(a: StepAttempt, outcome: Outcome, pid: number): RunEvent[] {
  if (!outcome.ok) return [failureOrRetry(a, outcome.error)];
  const { runId, step } = a;
  const key = step.key;
  const op = step.node.op;
  const fail = (message: string): RunEvent[] => [failureOrRetry(a, new TypeError(message), false)];
  // Outputs: the value itself, or for named outputs the object's keys. Dynamic outputs were emitted already.
  const outputs: [string, unknown][] = [];
  if (!op.multipleOutputs) {
    if (!op.dynamicOutputs.has(DEFAULT_OUTPUT)) outputs.push([DEFAULT_OUTPUT, outcome.value === undefined ? null : outcome.value]);
    else if (outcome.value !== undefined) return fail(`op ${op.name} has a dynamic output: emit its items (yield dynamicOutput(key, value), or ctx.emit) instead of returning a value`);
  } else if (!(outcome.value === undefined && op.dynamicOutputs.size === Object.keys(op.outs).length)) {
    const v = outcome.value;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return fail(`op ${op.name} declares outputs ${Object.keys(op.outs).join(', ')}, so it must return an object with them (got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v})`);
    const obj = v as Record<string, unknown>;
    for (const name of Object.keys(obj)) {
      if (!(name in op.outs)) return fail(`op ${op.name} returned output ${name}, which it does not declare (outs: ${Object.keys(op.outs).join(', ')})`);
      if (op.dynamicOutputs.has(name) && obj[name] !== undefined) return fail(`op ${op.name} returned its dynamic output ${name}: emit its items (yield dynamicOutput(key, value, { output: '${name}' })) instead`);
    }
    for (const [name, def] of Object.entries(op.outs)) {
      if (def.dynamic) continue;
      if (obj[name] !== undefined) outputs.push([name, obj[name]]);
      else if (!def.optional) return fail(`op ${op.name} did not produce its required output ${name}; mark it out({ optional: true }) if it may be left out`);
    }
  }
  const out = outputs.map(([name, value]) => outputEvent(runId, key, a.attempt, pid, name, value));
  out.push(stepEvent('STEP_SUCCESS', runId, key, a.attempt, pid));
  return out;
}

/** What the channel holds now, without the wake-ups. */
function taken(channel: Channel): RunEvent[] {
  const evs = channel.take();
  return evs.includes(WAKE) ? evs.filter((ev) => ev !== WAKE) : evs;
}

function isGenerator(v: unknown): v is Generator | AsyncGenerator {
  const tag = Object.prototype.toString.call(v);
  return tag === '[object Generator]' || tag === '[object AsyncGenerator]';
}

/** A synchronous generator runs this long between awaits: its items go out in slices, not one await each. */
const SLICE_MS = 1;

/**
 * Runs an op's generator to its end: each item it yields to `emit`; resolves
 * with what it returns. An async generator is awaited item by item; a
 * synchronous one runs in slices of SLICE_MS with an await between, so its
 * items still go out while it runs.
 */
async function drain(gen: Generator | AsyncGenerator, opName: string, emit: (item: DynamicOutput) => void): Promise<unknown> {
  const sync = Object.prototype.toString.call(gen) === '[object Generator]';
  let ended = false;
  let slice = performance.now();
  try {
    for (;;) {
      let n: IteratorResult<unknown>;
      if (!sync) n = await gen.next();
      else {
        n = (gen as Generator).next();
        if (performance.now() - slice >= SLICE_MS) {
          await null;
          slice = performance.now();
        }
      }
      if (n.done) {
        ended = true;
        return n.value;
      }
      if (!isDynamicOutput(n.value)) throw new TypeError(`op ${opName} yielded ${n.value === null ? 'null' : typeof n.value}: an op's generator yields dynamicOutput(key, value)`);
      emit(n.value);
    }
  } finally {
    // Stopped early (a bad item): its finally blocks run.
    if (!ended) await gen.return(undefined);
  }
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
