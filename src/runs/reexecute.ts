/**
 * Re-execution, as Dagster's: a new run of a stored run's job that runs
 * some of its steps and loads every other input from the outputs of the
 * runs before it. From failure: the steps that failed, were interrupted
 * (started, never ended) or never ran, and every step downstream of them;
 * the steps that succeeded or were skipped stay as they were. Or any
 * selection of steps (selection.ts). Works on every executor: only the
 * plan and the inputs differ from a first run.
 */
import type { JobSpec } from '../jobs/definitions.ts';
import type { RunEvent } from '../jobs/events.ts';
import type { ExecutorDefinition } from '../jobs/executor.ts';
import type { JobDefinition } from '../jobs/job.ts';
import type { OutputStore } from '../jobs/outputs.ts';
import { loadDefinitions } from '../jobs/repository.ts';
import { executeJob, type ExecuteOptions, type JobExecutionResult } from '../jobs/run.ts';
import { decode } from '../protocol/codec.ts';
import { ReexecutionError, RunNotFoundError } from './errors.ts';
import { OUTPUTS_TAG, PARENT_RUN_TAG, ROOT_RUN_TAG, type RunRecord } from './records.ts';
import { stepOutcomes } from './outcomes.ts';
import { selectSteps, withDownstream } from './selection.ts';
import type { RunStorage } from './storage.ts';
import type { Instance } from './instance.ts';

/** How far back a re-execution looks for outputs: the parent, its parent, and so on. */
const MAX_ANCESTORS = 100;
/** Tags of a run that its re-executions do not inherit (they get their own). */
const OWN_TAGS = new Set([PARENT_RUN_TAG, ROOT_RUN_TAG, OUTPUTS_TAG]);

export interface ReexecuteOptions extends Omit<ExecuteOptions, 'instance' | 'stepKeys' | 'loadOutputs' | 'parentRunId' | 'rootRunId' | 'runConfig' | 'inputValues'> {
  /** The failed, interrupted and never-run steps, and everything downstream of them. */
  fromFailure?: boolean;
  /** Steps to run, in Dagster's selection syntax (`*c`, `b+`). */
  stepSelection?: readonly string[];
  /** The job, for a run not launched from a code location (executeInProcess); default: rebuilt from the run's code location. */
  job?: JobDefinition;
  /** Default: the job's executor in its Definitions (or the in-process one for a job given here). */
  executorDef?: ExecutorDefinition;
}

export interface ReexecutionPlan {
  parent: RunRecord;
  rootRunId: string;
  stepKeys: string[];
  /** Inputs of those steps from steps not run: the run whose output each loads. */
  loadOutputs: { stepKey: string; output: string; runId: string }[];
}

/** Which steps a re-execution of `parent` runs, and where its other inputs come from. */
export async function planReexecution(storage: RunStorage, store: OutputStore, parent: RunRecord, job: JobSpec, opts: { fromFailure?: boolean; stepSelection?: readonly string[] }): Promise<ReexecutionPlan> {
  if (parent.tags[OUTPUTS_TAG] === 'memory') throw new ReexecutionError(`run ${parent.runId} kept its outputs in memory (executeInProcess without an output store), so no later run can load them: run it again in full, or launch it with an output store to re-execute it later`);
  if (!opts.fromFailure && !opts.stepSelection) throw new ReexecutionError('say which steps to re-execute: fromFailure, or a stepSelection');
  if (opts.fromFailure && opts.stepSelection) throw new ReexecutionError('re-execute from failure or a step selection, not both');
  const parentEvents = (await storage.events(parent.runId)).map((e) => e.event);
  let stepKeys: string[];
  if (opts.fromFailure) {
    if (parent.status !== 'FAILURE' && parent.status !== 'CANCELED') throw new ReexecutionError(`run ${parent.runId} did not fail (it is ${parent.status}): only a failed or canceled run re-executes from failure`);
    const ran = parent.stepKeys ?? job.steps.map((s) => s.key);
    const outcomes = stepOutcomes(ran, parentEvents);
    const again = [...outcomes].filter(([, o]) => o === 'failed' || o === 'interrupted' || o === 'not-run').map(([k]) => k);
    if (again.length === 0) throw new ReexecutionError(`run ${parent.runId} has no failed, interrupted or unrun step to re-execute`);
    stepKeys = withDownstream(job, again);
  } else stepKeys = selectSteps(job, opts.stepSelection ?? []);

  // Outputs of the steps not run, from the nearest run of the line that produced each (and still has it).
  const lineage = await ancestors(storage, parent, parentEvents);
  const source = async (stepKey: string, output: string): Promise<string | null> => {
    for (const run of lineage) {
      if (run.produced.has(`${stepKey}\u0000${output}`) && (await store.has({ runId: run.runId, stepKey, output }))) return run.runId;
    }
    return null;
  };
  const chosen = new Set(stepKeys);
  const loadOutputs: ReexecutionPlan['loadOutputs'] = [];
  for (let changed = true; changed; ) {
    changed = false;
    loadOutputs.length = 0;
    for (const key of [...chosen]) {
      for (const i of job.step(key)?.inputs ?? []) {
        if (i.kind !== 'step' || chosen.has(i.stepKey) || loadOutputs.some((l) => l.stepKey === i.stepKey && l.output === i.output)) continue;
        const runId = await source(i.stepKey, i.output);
        if (runId) {
          loadOutputs.push({ stepKey: i.stepKey, output: i.output, runId });
          continue;
        }
        const outcome = stepOutcomes([i.stepKey], parentEvents).get(i.stepKey);
        if (opts.stepSelection && outcome !== 'skipped') throw new ReexecutionError(`step ${key} takes output ${i.output} of step ${i.stepKey}, which no run from ${parent.runId} back produced (or the output store lost it): add ${i.stepKey} to the selection`);
        if (outcome === 'succeeded') {
          // Its run said it succeeded but the store does not have the output (the launcher died before writing it): run it again.
          chosen.add(i.stepKey);
          changed = true;
        }
      }
    }
  }
  return { parent, rootRunId: parent.rootRunId ?? parent.runId, stepKeys: job.steps.filter((s) => chosen.has(s.key)).map((s) => s.key), loadOutputs };
}

async function ancestors(storage: RunStorage, parent: RunRecord, parentEvents: RunEvent[]): Promise<{ runId: string; produced: Set<string> }[]> {
  const produced = (evs: RunEvent[]): Set<string> => new Set(evs.filter((e) => e.type === 'STEP_OUTPUT' && e.stepKey !== null).map((e) => `${e.stepKey}\u0000${e.output ?? 'result'}`));
  const line = [{ runId: parent.runId, produced: produced(parentEvents) }];
  let next = parent.parentRunId;
  while (next && line.length < MAX_ANCESTORS) {
    const run = await storage.getRun(next);
    if (!run) break;
    line.push({ runId: run.runId, produced: produced((await storage.events(run.runId)).map((e) => e.event)) });
    next = run.parentRunId;
  }
  return line;
}

/** Re-executes a stored run (see the module's comment). */
export async function reexecute(instance: Instance, runId: string, opts: ReexecuteOptions = {}): Promise<JobExecutionResult> {
  const parent = await instance.storage.getRun(runId);
  if (!parent) throw new RunNotFoundError(runId);
  let job: JobDefinition;
  let executorDef = opts.executorDef;
  if (opts.job) job = opts.job;
  else {
    if (!parent.location) throw new ReexecutionError(`run ${runId} of job ${parent.job} was not launched from a code location, so weft cannot rebuild its job: pass the job (reexecute(..., { job }))`);
    const defs = await loadDefinitions(parent.location);
    const found = defs.findJob(parent.job);
    if (!found) throw new ReexecutionError(`the code location ${parent.location} no longer has job ${parent.job} (jobs: ${defs.jobNames.join(', ') || 'none'})`);
    job = found;
    executorDef ??= defs.executorFor(job);
  }
  if (!executorDef) {
    const { inProcessExecutor } = await import('../jobs/executors/in-process.ts');
    executorDef = inProcessExecutor as ExecutorDefinition;
  }
  const plan = await planReexecution(instance.storage, instance.outputStore, parent, job, opts);
  const tags = Object.fromEntries(Object.entries(parent.tags).filter(([k]) => !OWN_TAGS.has(k)));
  const { fromFailure: _f, stepSelection: _s, job: _j, executorDef: _e, ...execOpts } = opts;
  return executeJob(job, executorDef, parent.location ? { module: parent.location, jobName: parent.job } : null, {
    ...execOpts,
    instance,
    runConfig: parent.runConfig,
    inputValues: parent.inputValues ? (decode(parent.inputValues) as Record<string, unknown>) : {},
    tags: { ...tags, ...opts.tags },
    parentRunId: parent.runId,
    rootRunId: plan.rootRunId,
    stepKeys: plan.stepKeys,
    loadOutputs: plan.loadOutputs,
  });
}
