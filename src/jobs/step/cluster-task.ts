/**
 * The task functions of the cluster executor (executors/cluster.ts), run by
 * workers' executor threads. `runStep` runs one step of a run, with its
 * retries, and publishes the step's events on the run's topic as they
 * happen; its result is the step's output (or, for an op with named or
 * dynamic outputs, a record of them), which stays on the worker for the
 * steps downstream. `pickOutput` takes one named output out of such a
 * record. Each item of a dynamic output is also put on the worker at once as
 * its pick task's result (scheduler/early.ts), so the copies of the steps
 * mapped over it start while the step still runs.
 *
 * A thread rebuilds the job once per code location and the plan once per
 * run, then reuses them for every step of the run it runs.
 */
import { CancelledError, serializeError, WeftError } from '../../errors.ts';
import { encode } from '../../protocol/codec.ts';
import { FsOutputStore } from '../outputs.ts';
import { taskContext, type TaskContext } from '../../worker/task-context.ts';
import type { RunConfig } from '../definitions.ts';
import type { RunEvent } from '../events.ts';
import { codeVersion, loadDefinitions, type CodeLocationJobs } from '../location.ts';
import { userCodeGeneration, userModuleChanged } from '../../util/user-modules.ts';
import type { ExecutionPlan, PlannedStep } from '../plan.ts';
import { DEFAULT_OUTPUT } from '../retry.ts';
import { stepAttemptEvents } from '../step-runner.ts';
import { sleep } from '../executors/common.ts';
import { rebuildPlan } from './rebuild.ts';
import { keepsRecord, pickKey } from './cluster-keys.ts';
import { splitItemOutput } from '../dynamic.ts';

/** What a step task needs besides its inputs: the same for every step of a run except `stepKey`. */
export interface StepTaskSpec {
  runId: string;
  /** file: URL of the code location. */
  module: string;
  /** Its fingerprint when the run started (codeVersion), null if unknown. */
  version: string | null;
  jobName: string;
  stepKey: string;
  runConfig: RunConfig;
  /** The run's op selection (see StepSpec). */
  opSelection?: string[];
  /** false: a failure is final (the executor's retries are disabled). */
  retries: boolean;
  /** Where the step's events go. */
  topic: string;
  /** The directory of the run's output store: the worker writes the step's outputs there itself. */
  outputDir?: string;
}

/** The step failed (its STEP_FAILURE event says why): its task errs, so the steps downstream do not run. */
export class StepTaskFailed extends WeftError {
  override name = 'StepTaskFailed';
}

/** Code locations loaded on this thread, with the fingerprint of the file as it was imported. */
const definitions = new Map<string, Promise<Loaded>>();
/** Plans of the latest runs seen on this thread. */
const plans = new Map<string, Promise<ExecutionPlan>>();
const MAX_PLANS = 16;

type Loaded = { defs: CodeLocationJobs; version: string | null };

/** The code location of the run's module, loaded on this thread (once per version of it). */
function codeLocation(spec: StepTaskSpec): Promise<Loaded> {
  let loaded = definitions.get(spec.module);
  if (!loaded) {
    const version = codeVersion(spec.module);
    const p = loadDefinitions(spec.module).then((defs) => ({ defs, version }));
    loaded = p;
    definitions.set(spec.module, p);
    p.catch(() => definitions.get(spec.module) === p && definitions.delete(spec.module));
  }
  return loaded;
}

/** userCodeGeneration() when the code locations above were loaded (the worker follows its modules: see user-modules.ts). */
let generation = 0;

function planFor(spec: StepTaskSpec): Promise<ExecutionPlan> {
  if (generation !== userCodeGeneration()) {
    // A code location changed on disk: loaded again for the runs that start now; plans of runs under way are kept.
    generation = userCodeGeneration();
    definitions.clear();
  }
  const hit = plans.get(spec.runId);
  if (hit) return hit;
  const plan = codeLocation(spec).then(async (loaded) => {
    let { defs, version } = loaded;
    if (spec.version !== null && version !== null && version !== spec.version && codeVersion(spec.module) === spec.version) {
      // The run started on the code on disk now, and this thread has an older one: its watcher has not said so yet.
      userModuleChanged(spec.module);
      definitions.delete(spec.module);
      ({ defs, version } = await codeLocation(spec));
    }
    if (spec.version !== null && version !== null && version !== spec.version) {
      throw new WeftError(`${spec.module} changed after run ${spec.runId} started; this worker has the code as it is now: run the job again`);
    }
    return rebuildPlan(defs, spec);
  });
  plans.set(spec.runId, plan);
  plan.catch(() => plans.delete(spec.runId));
  if (plans.size > MAX_PLANS) plans.delete(plans.keys().next().value as string);
  return plan;
}

/**
 * Runs step `spec.stepKey`. `inputs` has one entry per input of the step:
 * the upstream output or job input (null where the input is a constant of
 * the job, which the plan has).
 */
export async function runStep(spec: StepTaskSpec, inputs: unknown[]): Promise<unknown> {
  const ctx = taskContext();
  const step = (await planFor(spec)).step(spec.stepKey);
  const values = step.node.inputs.map((src, i) => (src.kind === 'value' ? src.value : inputs[i]));
  const outputs: Record<string, unknown> = {};
  for (let attempt = 0; ; attempt++) {
    const last = await runAttempt(ctx, spec, step, values, attempt, outputs);
    if (last.type === 'STEP_SUCCESS') return keepsRecord(step.node.op) ? outputs : outputs[DEFAULT_OUTPUT];
    if (last.type !== 'STEP_UP_FOR_RETRY') throw new StepTaskFailed(last.message);
    await sleep(Math.max(0, last.retryInSeconds ?? 0) * 1000, ctx.signal);
    if (ctx.signal.aborted) throw new CancelledError(`step ${step.key} was cancelled while waiting to retry`);
  }
}

/** One attempt: publishes its events (outputs without their values; items in batches) and returns the last one. */
async function runAttempt(ctx: TaskContext, spec: StepTaskSpec, step: PlannedStep, inputs: unknown[], attempt: number, outputs: Record<string, unknown>): Promise<RunEvent> {
  let last: RunEvent | null = null;
  const items = new ItemEvents(ctx, spec.topic);
  const send = (ev: RunEvent, item = false): void => {
    last = ev;
    if (item) return items.add(ev);
    items.flush();
    publish(ctx, spec.topic, ev);
  };
  try {
    // In lists: a fan-out's items, emitted in one go, cost an await per list, not per item.
    // The thread makes a task's signal when first asked (an AbortController per step was 6% of the thread's time): passed on unasked.
    const attemptOf = {
      runId: spec.runId,
      step,
      inputs,
      attempt,
      retries: spec.retries,
      get signal() {
        return ctx.signal;
      },
    };
    events: for await (const evs of stepAttemptEvents(attemptOf)) {
      for (const ev of evs) {
        if (ev.type !== 'STEP_OUTPUT') {
          send(ev);
          continue;
        }
        const { value, ...rest } = ev;
        if (typeof value === 'function' || typeof value === 'symbol') {
          const message = `output ${ev.output} of step ${step.key} is a ${typeof value}, which cannot be kept on the cluster or sent to another worker`;
          send({ ...rest, type: 'STEP_FAILURE', message: `step ${step.key} failed: TypeError: ${message}`, error: { name: 'TypeError', message } });
          break events;
        }
        const name = ev.output ?? DEFAULT_OUTPUT;
        outputs[name] = value;
        // An item of a dynamic output: on this worker now as its pick task's result, so the steps mapped over it start while this one runs.
        const item = splitItemOutput(name) !== null;
        if (item) putEarly(ctx, pickKey(spec.runId, step.key, name), value);
        if (spec.outputDir !== undefined) {
          try {
            await new FsOutputStore(spec.outputDir).put({ runId: spec.runId, stepKey: step.key, output: ev.output ?? DEFAULT_OUTPUT }, encode(value));
          } catch (err) {
            const message = (err as Error).message;
            send({ ...rest, type: 'STEP_FAILURE', message: `step ${step.key} failed: ${message}`, error: serializeError(err) });
            break events;
          }
          send({ ...rest, stored: true }, item);
          continue;
        }
        send(rest, item);
      }
    }
  } finally {
    items.flush();
  }
  if (!last) throw new WeftError(`step ${step.key} ended without events`);
  return last;
}

/** Item events in a batch at most this long: a batch of short events stays far below the 1 MiB an event may take. */
const ITEM_BATCH = 256;
/** How long the first item of a batch waits for others while the step emits in one go. */
const ITEM_WAIT_MS = 2;

/**
 * The item events of a step (STEP_OUTPUT of a dynamic output), published as
 * lists: a fan-out step emitting 10,000 keys sends about 40 messages
 * instead of 10,000, each encoded once, passed on by the scheduler once
 * and decoded once by the launcher. A batch goes when it is full, when its
 * first item has waited ITEM_WAIT_MS, once the step yields to the event
 * loop (an item emitted now and then goes at once), and before any other
 * event of the step, so the order of the step's events holds.
 */
class ItemEvents {
  private batch: RunEvent[] = [];
  private since = 0;
  private soon: NodeJS.Immediate | null = null;

  constructor(
    private readonly ctx: TaskContext,
    private readonly topic: string,
  ) {}

  add(ev: RunEvent): void {
    const now = performance.now();
    if (this.batch.length === 0) this.since = now;
    this.batch.push(ev);
    if (this.batch.length >= ITEM_BATCH || now - this.since >= ITEM_WAIT_MS) this.flush();
    else this.soon ??= setImmediate(() => this.flush());
  }

  flush(): void {
    if (this.soon) {
      clearImmediate(this.soon);
      this.soon = null;
    }
    if (this.batch.length === 0) return;
    const evs = this.batch;
    this.batch = [];
    try {
      this.ctx.emit(this.topic, evs);
    } catch (err) {
      // Too large as one message (long mapping keys): one by one.
      if (!(err instanceof RangeError)) throw err;
      for (const ev of evs) publish(this.ctx, this.topic, ev);
    }
  }
}

/** Puts an item early; one that cannot be is left to its pick task, which takes it from the step's result once the step ends. */
function putEarly(ctx: TaskContext, key: string, value: unknown): void {
  try {
    ctx.earlyResult(key, value);
  } catch {
    // Too long a key, or a value msgpack cannot encode here (the step's result will say so).
  }
}

/** Publishes an event; one too large to send (a log with huge data) goes without its data. */
function publish(ctx: TaskContext, topic: string, ev: RunEvent): void {
  try {
    ctx.emit(topic, ev);
  } catch (err) {
    if (!(err instanceof RangeError) || !ev.data) throw err;
    ctx.emit(topic, { ...ev, data: { note: `data left out: ${err.message}` } });
  }
}

/** One named output of a step with named outputs; throws when the step did not produce it. */
export function pickOutput(outputs: Record<string, unknown>, name: string): unknown {
  if (!Object.prototype.hasOwnProperty.call(outputs, name)) throw new WeftError(`output ${name} was not produced`);
  return outputs[name];
}
