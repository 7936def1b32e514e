/**
 * Jobs as users define them: a JobSpec (definitions.ts) with the executor
 * that runs it and a way to run it here. This module sits above the plan,
 * the run and the in-process executor, which only ever see JobSpecs.
 */
import { assetJobSteps, checkName, composeGraph, JobSpec, recordSteps, type AssetDefinition, type GraphOptions, type RunConfig, type StepNode } from './definitions.ts';
import type { ExecutorDefinition } from './executor.ts';
import { inProcessExecutor } from './executors/in-process.ts';
import { executeJob, type ExecuteOptions, type JobExecutionResult } from './run.ts';

export interface JobOptions {
  name: string;
  description?: string;
  /** The executor for this job's runs (overrides the Definitions' one). */
  executorDef?: ExecutorDefinition;
  tags?: Record<string, string>;
  /** Default run config, merged under the run config given at launch. */
  config?: RunConfig;
  /** Its runs run only these steps (Dagster's op selection; inputs from steps left out come from runConfig.ops.OP.inputs). */
  opSelection?: string[];
}

export class JobDefinition extends JobSpec {
  readonly executorDef: ExecutorDefinition | undefined;

  /** `steps` may be a function that records them, called once on first use when job bodies are deferred. */
  constructor(opts: JobOptions, steps: StepNode[] | (() => StepNode[]), inputs: string[]) {
    super(opts, steps, inputs);
    this.executorDef = opts.executorDef;
  }

  /**
   * Runs the job in this process, one step after another, whatever executor
   * it names (the run config's `execution` section is ignored). Given an
   * instance, the run is recorded there; its outputs stay in memory unless
   * `outputStore` names a store (as Dagster's execute_in_process).
   */
  async executeInProcess(opts: ExecuteOptions = {}): Promise<JobExecutionResult> {
    return executeJob(this, inProcessExecutor as ExecutorDefinition, null, { ...opts, outputStore: opts.outputStore ?? null, ignoreExecutionConfig: true });
  }
}

/** Defines a job: the body wires ops by calling them, `addOne(one())`. */
export function job(opts: JobOptions, body: () => void): JobDefinition {
  return new JobDefinition(opts, () => recordSteps(body).steps, []);
}

export type ToJobOptions = Partial<JobOptions>;

/** A graph as used in a body (call it) or turned into a job (`toJob`). */
export type GraphDef<R> = ((...inputs: unknown[]) => R) & {
  readonly graphName: string;
  toJob(opts?: ToJobOptions): JobDefinition;
};

/**
 * Composes ops and graphs. Called in a body, its steps join the job under
 * keys prefixed with the graph's name (`my_graph.add_one`); it returns what
 * its body returns. `toJob` makes a job of it whose inputs are the graph's.
 */
export function graph<R>(opts: GraphOptions, body: (...inputs: never[]) => R): GraphDef<R> {
  const g = composeGraph(opts, body);
  const toJob = (j: ToJobOptions = {}): JobDefinition => new JobDefinition({ ...j, name: j.name ?? opts.name, description: j.description ?? opts.description }, g.jobSteps, g.inputs);
  return Object.assign(g.call, { graphName: opts.name, toJob });
}

/** A job over assets, built when a Definitions object lists it. */
export class AssetJobSpec {
  constructor(
    readonly name: string,
    /** '*' for every asset, or asset names (their upstream assets come along: weft keeps no asset storage between runs). */
    readonly selection: '*' | readonly string[],
    readonly opts: Omit<JobOptions, 'name'>,
  ) {
    checkName('asset job', name);
  }

  /** The job over `assets`. */
  resolve(assets: readonly AssetDefinition[]): JobDefinition {
    return new JobDefinition({ ...this.opts, name: this.name }, assetJobSteps(this.name, this.selection, assets), []);
  }
}

/** A job that materializes assets: `defineAssetJob('all', { selection: '*' })`. */
export function defineAssetJob(name: string, opts: { selection?: '*' | string[] } & Omit<JobOptions, 'name'> = {}): AssetJobSpec {
  const { selection, ...rest } = opts;
  return new AssetJobSpec(name, selection ?? '*', rest);
}
