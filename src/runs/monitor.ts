/**
 * The run monitor: a run whose launcher stopped writing its heartbeat
 * (killed with -9, its machine lost) for longer than the instance's
 * `runMonitor.heartbeatTimeout` is marked FAILURE with that reason, and what
 * its executor left (containers, Jobs) is removed where the executor can.
 * The run can then be re-executed from failure: the steps it was running
 * count as interrupted. The daemon runs this every few seconds; the runs
 * commands run it once before they read, so a run never shows as STARTED
 * for ever because nobody looked.
 */
import type { ExecutorDefinition } from '../jobs/executor.ts';
import { formatDuration } from '../util/duration.ts';
import type { Instance } from './instance.ts';
import type { RunRecord } from './records.ts';
import { IN_PROGRESS_STATUSES } from './status.ts';

/** Fails every run whose launcher's heartbeat is too old; resolves with those it failed. */
export async function failStaleRuns(instance: Instance, opts: { now?: number; log?: (message: string) => void } = {}): Promise<RunRecord[]> {
  const now = opts.now ?? Date.now();
  const timeout = instance.config.runMonitor.heartbeatTimeout;
  const failed: RunRecord[] = [];
  for (const run of await instance.storage.staleRuns(now - timeout)) {
    const ago = formatDuration(Math.round((now - (run.heartbeatAt ?? run.createdAt)) / 1000) * 1000);
    const message = `run ${run.runId} failed: its launcher (${run.launcher ?? 'unknown'}) wrote no heartbeat for ${ago}, more than runMonitor.heartbeatTimeout (${formatDuration(timeout)}): it was killed, or its machine was lost. Re-execute it from failure: weft runs reexecute ${run.runId} --from-failure`;
    const error = { name: 'LauncherLostError', message };
    const moved = await instance.storage.transition(run.runId, { type: 'RUN_FAILURE', runId: run.runId, stepKey: null, timestamp: now, message, error }, IN_PROGRESS_STATUSES);
    if (!moved) continue;
    failed.push(run);
    opts.log?.(message);
    const note = await cleanup(run).catch((err: unknown) => `could not remove what its steps left: ${(err as Error).message}`);
    if (note) {
      await instance.storage.appendEvents(run.runId, [{ type: 'ENGINE_EVENT', runId: run.runId, stepKey: null, timestamp: Date.now(), message: `run monitor: ${note}` }]);
      opts.log?.(`run ${run.runId}: ${note}`);
    }
  }
  return failed;
}

/** Stops what the run's executor left, if the executor can say: a note of what was done, or null. */
async function cleanup(run: RunRecord): Promise<string | null> {
  if (!run.location) return null;
  // The job layer loads only when a run needs its executor's cleanup, not on every look at storage.
  const [{ loadDefinitions }, { resolveRunConfig }] = await Promise.all([import('../jobs/repository.ts'), import('../jobs/run-config.ts')]);
  const defs = await loadDefinitions(run.location);
  const job = defs.findJob(run.job);
  if (!job) return null;
  const exec = defs.executorFor(job) as ExecutorDefinition;
  if (!exec.cleanupRun) return null;
  const { executorConfig } = resolveRunConfig(job, exec, run.runConfig);
  const n = await exec.cleanupRun(executorConfig, run.runId);
  return n > 0 ? `removed ${n} leftover(s) of the run's steps (executor ${exec.name})` : null;
}
