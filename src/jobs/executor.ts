/**
 * The executor system. An executor runs the steps of a run: it gets the
 * execution plan and yields the run's step events. weft's own executors
 * (in-process, multiprocess, the default, the cluster's) use this API and
 * nothing else, so a custom executor can do anything they do; see
 * docs/executors.md.
 *
 *   const mine = executor({ name: 'mine', configSchema: z.object({ ... }) }, (init) => ({
 *     async *execute(ctx) { ... yield events ... },
 *   }));
 */
import type { z } from 'zod';
import type { JobSpec, RunConfig } from './definitions.ts';
import type { RunEvent } from './events.ts';
import type { ActiveExecution, ExecutionPlan, PlannedStep } from './plan.ts';

/** Where a job's code lives, so that another process can rebuild it. */
export interface CodeLocation {
  /** file: URL of the module whose default export is the Definitions holding the job. */
  module: string;
  jobName: string;
}

/** An output of an earlier run that a re-execution's steps take as input. */
export interface LoadedOutput {
  stepKey: string;
  output: string;
  /** The run that produced it. */
  runId: string;
  value: unknown;
  bytes: Uint8Array;
}

/** Needs an executor states, checked when a run starts. */
export type ExecutorRequirement = 'reconstructable-job';

export interface ExecutorInit<C> {
  /** The executor's config: `.configured(...)` merged with `runConfig.execution.config`, parsed. */
  config: C;
  job: JobSpec;
}

/** What an executor gets for a run. */
export interface ExecutionContext {
  readonly runId: string;
  readonly job: JobSpec;
  readonly plan: ExecutionPlan;
  readonly runConfig: RunConfig;
  /** The op selection the run was launched with (the job is already cut to it; step processes cut theirs too), or null. */
  readonly opSelection: readonly string[] | null;
  /** Aborted when the run is cancelled: stop starting steps, end running ones, return. */
  readonly signal: AbortSignal;
  /** Where the job can be rebuilt in another process (checked when the executor requires it). */
  readonly location: CodeLocation | null;
  /** The values of the job's inputs (a job made from a graph with inputs). */
  readonly inputValues: Readonly<Record<string, unknown>>;
  /** Outputs of steps outside the plan that its steps take (a re-execution): loaded from earlier runs. */
  readonly loadedOutputs: readonly LoadedOutput[];
  /**
   * The directory of the run's output store, when it has one that processes
   * here can write: an executor whose steps' outputs never pass through the
   * launcher (the cluster's) has them written there and yields STEP_OUTPUT
   * with `stored: true`.
   */
  readonly outputDirectory: string | null;
  /** New bookkeeping over the plan: which steps may run, skips, retries. */
  activeExecution(): ActiveExecution;
  /** The values of a step's inputs from the outputs seen so far. */
  inputsFor(step: PlannedStep): unknown[];
  /** The msgpack bytes of a step's inputs, for another process (encoded once per output). */
  inputBytesFor(step: PlannedStep): Uint8Array[];
  /** Runs one attempt of a step in this process; `retries: false` makes failures final. */
  runStepHere(step: PlannedStep, attempt: number, opts?: { retries?: boolean }): AsyncIterable<RunEvent>;
  /**
   * Sets the value of a step's output in the run's result. For an executor
   * that keeps outputs elsewhere (the cluster executor keeps them on workers)
   * and yields STEP_OUTPUT without a value: it fetches them later and sets
   * them here before it returns.
   */
  setOutputValue(stepKey: string, output: string, value: unknown): void;
  /** An ENGINE_EVENT to yield (progress notes of the executor itself). */
  engineEvent(message: string, data?: Record<string, unknown>): RunEvent;
}

export interface Executor {
  /**
   * Runs the plan; yields every event of its steps, in order per step: one
   * at a time, or in lists of those that came together (a list costs the
   * run one await instead of one per event, which counts at thousands of
   * steps a second).
   */
  execute(ctx: ExecutionContext): AsyncIterable<RunEvent | readonly RunEvent[]>;
}

export interface ExecutorDefinition<C = unknown> {
  readonly name: string;
  readonly configSchema: z.ZodType<C> | undefined;
  /** What this executor needs with a given config (checked when a run starts). */
  requirementsFor(config: C): readonly ExecutorRequirement[];
  /** Config given with `.configured()`, under the run config's `execution.config`. */
  readonly presetConfig: unknown;
  create(init: ExecutorInit<C>): Executor;
  /** The same executor with config filled in (the run config can still override it). */
  configured(config: unknown): ExecutorDefinition<C>;
  /**
   * Optional: stops and removes what a run left behind when its launcher
   * died (kill -9, a lost machine): containers, Jobs. Called by the run
   * monitor (runs/monitor.ts) with the run's executor config; resolves with
   * how many things it removed.
   */
  cleanupRun?(config: C, runId: string): Promise<number>;
}

export interface ExecutorOptions<C> {
  name: string;
  /**
   * A zod schema for the config, or a function that builds one: called once,
   * when a run first needs it, so that importing the executor builds nothing.
   */
  configSchema?: z.ZodType<C> | (() => z.ZodType<C>);
  /** What the executor needs, or a function of its config giving it. */
  requirements?: ExecutorRequirement[] | ((config: C) => ExecutorRequirement[]);
  /** See ExecutorDefinition.cleanupRun. */
  cleanupRun?: (config: C, runId: string) => Promise<number>;
}

/** Defines an executor. */
export function executor<C = unknown>(opts: ExecutorOptions<C>, create: (init: ExecutorInit<C>) => Executor): ExecutorDefinition<C> {
  const given = opts.configSchema;
  let built: z.ZodType<C> | undefined;
  const schema = (): z.ZodType<C> | undefined => (typeof given === 'function' ? (built ??= given()) : given);
  const make = (preset: unknown): ExecutorDefinition<C> => ({
    name: opts.name,
    get configSchema() {
      return schema();
    },
    requirementsFor: (config: C) => (typeof opts.requirements === 'function' ? opts.requirements(config) : (opts.requirements ?? [])),
    presetConfig: preset,
    create,
    configured: (config: unknown) => make(mergeConfig(preset, config)),
    ...(opts.cleanupRun ? { cleanupRun: opts.cleanupRun } : {}),
  });
  return make(undefined);
}

/** Deep merge of plain objects (b wins); anything else is replaced. */
export function mergeConfig(a: unknown, b: unknown): unknown {
  if (b === undefined) return a;
  if (!isPlain(a) || !isPlain(b)) return b;
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = mergeConfig(a[k], v);
  return out;
}

function isPlain(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
}

/**
 * An execution whose code is imported when the run starts: an executor's
 * definition names it, so that a code location that only names the executor
 * (every step's process imports one) does not load its machinery.
 */
export async function* loadedExecution<T>(started: Promise<AsyncIterable<T>>): AsyncGenerator<T> {
  yield* await started;
}
