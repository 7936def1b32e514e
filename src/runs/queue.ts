/**
 * The run queue (Dagster's QueuedRunCoordinator). `weft runs submit`
 * stores a run as QUEUED; the daemon (daemon.ts) picks which queued runs
 * start, under `runQueue.maxConcurrentRuns` and `tagConcurrencyLimits`,
 * higher `weft/run-priority` first, then oldest first; claims each with a
 * compare-and-set (QUEUED to STARTING, which a cancel cannot race) and
 * starts `weft runs launch RUN`, which runs it like `weft run` does.
 */
import type { RunConfig } from '../jobs/definitions.ts';
import type { ExecutorDefinition } from '../jobs/executor.ts';
import { RUN_PRIORITY_TAG } from '../jobs/queue/keys.ts';
import { loadDefinitions } from '../jobs/repository.ts';
import { executeJob, type ExecuteOptions, type JobExecutionResult } from '../jobs/run.ts';
import { decode, encode } from '../protocol/codec.ts';
import { serializeError } from '../errors.ts';
import type { TagConcurrencyLimit } from './config.ts';
import { ReexecutionError, RunNotFoundError } from './errors.ts';
import type { Instance } from './instance.ts';
import { LAUNCHER } from './recorder.ts';
import { PARENT_RUN_TAG, ROOT_RUN_TAG, type RunRecord } from './records.ts';
import { opSelectionOf, planReexecution } from './reexecute.ts';

export interface Submission {
  job: string;
  /** file: URL of the code location. */
  location: string;
  runConfig: RunConfig;
  tags: Record<string, string>;
  inputValues?: Record<string, unknown>;
}

/** Stores a run as QUEUED. */
export async function submitRun(instance: Instance, s: Submission): Promise<RunRecord> {
  const runId = globalThis.crypto.randomUUID();
  const now = Date.now();
  return instance.storage.createRun(
    { runId, job: s.job, location: s.location, tags: s.tags, runConfig: s.runConfig, inputValues: s.inputValues && Object.keys(s.inputValues).length > 0 ? encode(s.inputValues) : null, parentRunId: null, rootRunId: null, stepKeys: null, executor: null, launcher: null, createdAt: now },
    { type: 'RUN_ENQUEUED', runId, stepKey: null, timestamp: now, message: `run ${runId} of job ${s.job} queued` },
  );
}

/** Tag of a queued re-execution: `from-failure`, or `steps:SELECTION`; the daemon plans it when it starts it. */
export const REEXECUTE_TAG = 'weft/reexecute';

/** Queues a re-execution of a stored run (the dashboard's button): planned when the daemon starts it, from storage as it is then. */
export async function submitReexecution(instance: Instance, parentRunId: string, how: { fromFailure: true } | { stepSelection: string }): Promise<RunRecord> {
  const parent = await instance.storage.getRun(parentRunId);
  if (!parent) throw new RunNotFoundError(parentRunId);
  if (!parent.location) throw new ReexecutionError(`run ${parentRunId} was not launched from a code location: re-execute it in code (reexecute(..., { job }))`);
  if ('fromFailure' in how && parent.status !== 'FAILURE' && parent.status !== 'CANCELED') throw new ReexecutionError(`run ${parentRunId} did not fail (it is ${parent.status}): only a failed or canceled run re-executes from failure`);
  const runId = globalThis.crypto.randomUUID();
  const now = Date.now();
  const tags = Object.fromEntries(Object.entries(parent.tags).filter(([k]) => !k.startsWith('weft/') || k === RUN_PRIORITY_TAG));
  tags[REEXECUTE_TAG] = 'fromFailure' in how ? 'from-failure' : `steps:${how.stepSelection}`;
  tags[PARENT_RUN_TAG] = parent.runId;
  tags[ROOT_RUN_TAG] = parent.rootRunId ?? parent.runId;
  return instance.storage.createRun(
    { runId, job: parent.job, location: parent.location, tags, runConfig: parent.runConfig, inputValues: parent.inputValues, parentRunId: parent.runId, rootRunId: parent.rootRunId ?? parent.runId, stepKeys: null, executor: null, launcher: null, createdAt: now },
    { type: 'RUN_ENQUEUED', runId, stepKey: null, timestamp: now, message: `re-execution ${runId} of run ${parent.runId} queued (${tags[REEXECUTE_TAG]})` },
  );
}

function priority(run: RunRecord): number {
  const n = Number(run.tags[RUN_PRIORITY_TAG] ?? 0);
  return Number.isFinite(n) ? n : 0;
}

/**
 * The queued runs that may start now, in the order to start them: a pure
 * decision over the queued runs and those under way.
 */
export function runsToStart(queued: readonly RunRecord[], inProgress: readonly RunRecord[], limits: { maxConcurrentRuns: number; tagConcurrencyLimits: readonly TagConcurrencyLimit[] }): RunRecord[] {
  const ordered = [...queued].sort((a, b) => priority(b) - priority(a) || a.createdAt - b.createdAt || (a.runId < b.runId ? -1 : 1));
  let free = limits.maxConcurrentRuns - inProgress.length;
  // Per limit: how many runs under way count against it, by the value they count under.
  const counts = limits.tagConcurrencyLimits.map(() => new Map<string, number>());
  const bucket = (l: TagConcurrencyLimit, run: RunRecord): string | null => {
    const v = run.tags[l.key];
    if (v === undefined) return null;
    if (l.value === undefined) return '';
    if (typeof l.value === 'string') return v === l.value ? '' : null;
    return v;
  };
  const add = (run: RunRecord): void => {
    limits.tagConcurrencyLimits.forEach((l, i) => {
      const b = bucket(l, run);
      if (b !== null) counts[i]?.set(b, (counts[i]?.get(b) ?? 0) + 1);
    });
  };
  for (const r of inProgress) add(r);
  const out: RunRecord[] = [];
  for (const run of ordered) {
    if (free <= 0) break;
    const blocked = limits.tagConcurrencyLimits.some((l, i) => {
      const b = bucket(l, run);
      return b !== null && (counts[i]?.get(b) ?? 0) >= l.limit;
    });
    if (blocked) continue;
    out.push(run);
    add(run);
    free--;
  }
  return out;
}

/**
 * Runs a queued run the daemon claimed (STARTING): its job from its code
 * location, with its executor, recorded in the instance. A run that cannot
 * even start (its code location fails to load) ends as FAILURE with why.
 */
export async function launchQueuedRun(instance: Instance, runId: string, show: (steps: number, go: (opts: ExecuteOptions) => Promise<JobExecutionResult>) => Promise<number>): Promise<number> {
  const run = await instance.storage.getRun(runId);
  if (!run) throw new RunNotFoundError(runId);
  if (run.status !== 'STARTING') throw new ReexecutionError(`run ${runId} is ${run.status}: only a run the daemon has claimed (STARTING) is launched`);
  let started = false;
  try {
    if (!run.location) throw new ReexecutionError(`run ${runId} names no code location`);
    const defs = await loadDefinitions(run.location);
    const job = defs.getJob(run.job);
    const exec = defs.executorFor(job) as ExecutorDefinition;
    // A queued re-execution is planned now, from the runs as they are.
    const how = run.tags[REEXECUTE_TAG];
    let reexecution: Partial<ExecuteOptions> = {};
    if (how !== undefined && run.parentRunId) {
      const parent = await instance.storage.getRun(run.parentRunId);
      if (!parent) throw new RunNotFoundError(run.parentRunId);
      const plan = await planReexecution(instance.storage, instance.outputStore, parent, job, how === 'from-failure' ? { fromFailure: true } : { stepSelection: [how.replace(/^steps:/, '')] });
      const opSelection = opSelectionOf(parent);
      reexecution = { parentRunId: parent.runId, rootRunId: plan.rootRunId, stepKeys: plan.stepKeys, loadOutputs: plan.loadOutputs, replayItems: plan.replayItems, ...(opSelection ? { opSelection } : {}) };
    }
    instance.claimed.add(runId);
    started = true;
    return await show(reexecution.stepKeys?.length ?? job.steps.length, (shown) =>
      executeJob(job, exec, { module: run.location as string, jobName: run.job }, { ...shown, ...reexecution, instance, runId, runConfig: run.runConfig, inputValues: run.inputValues ? (decode(run.inputValues) as Record<string, unknown>) : {} }),
    );
  } catch (err) {
    if (!started || (await instance.storage.getRun(runId))?.status === 'STARTING') {
      const message = `run ${runId} could not start (launched by ${LAUNCHER}): ${(err as Error).message}`;
      await instance.storage.transition(runId, { type: 'RUN_FAILURE', runId, stepKey: null, timestamp: Date.now(), message, error: serializeError(err) }, ['STARTING']);
    }
    throw err;
  } finally {
    instance.claimed.delete(runId);
  }
}
