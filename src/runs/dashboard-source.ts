/**
 * The dashboard's runs pages over the instance's run storage (the
 * scheduler's RunsSource): the latest runs of every executor, each with its
 * steps and latest events. The instance opens on the first request, so a
 * scheduler whose machine has no run storage still serves every other page
 * (the runs page says why it shows no stored run). A finished run's view is
 * kept: it no longer changes.
 */
import type { RunEventView, RunsSource, RunView, StepView } from '../scheduler/dashboard/snapshot.ts';
import { applyStepEvent } from '../scheduler/dashboard/steps.ts';
import type { RunEvent } from '../jobs/events.ts';
import { Instance } from './instance.ts';
import { failStaleRuns } from './monitor.ts';
import { submitReexecution } from './queue.ts';
import type { RunRecord } from './records.ts';
import { isFinished } from './status.ts';

const EVENTS_SHOWN = 200;
const KEPT = 200;

export function instanceRunsSource(home?: string): RunsSource & { close(): Promise<void> } {
  let opened: Promise<Instance> | null = null;
  const instance = (): Promise<Instance> => {
    opened ??= Instance.open(home !== undefined ? { home } : {}).catch((err: unknown) => {
      opened = null;
      throw err;
    });
    return opened;
  };
  const finished = new Map<string, RunView>();
  return {
    async recent(limit) {
      const inst = await instance();
      await failStaleRuns(inst);
      const runs = await inst.storage.listRuns({ limit });
      const views: RunView[] = [];
      for (const run of runs) {
        const kept = finished.get(run.runId);
        if (kept) {
          views.push(kept);
          continue;
        }
        const view = runView(run, (await inst.storage.events(run.runId)).map((e) => e.event));
        if (isFinished(run.status)) {
          finished.set(run.runId, view);
          if (finished.size > KEPT) finished.delete(finished.keys().next().value as string);
        }
        views.push(view);
      }
      return views;
    },
    async reexecuteFromFailure(runId) {
      return (await submitReexecution(await instance(), runId, { fromFailure: true })).runId;
    },
    async close() {
      if (opened) await (await opened).close();
    },
  };
}

/** A stored run as the runs page shows it; step states are the last step event of each, as for the cluster's own runs. */
export function runView(run: RunRecord, events: readonly RunEvent[]): RunView {
  const steps = new Map<string, StepView>();
  const planned = run.stepKeys ?? events.find((e) => e.type === 'RUN_START')?.data?.['stepKeys'];
  if (Array.isArray(planned)) for (const k of planned) if (typeof k === 'string') steps.set(k, { key: k, state: 'NOT_STARTED', start: null, end: null, attempt: 0 });
  for (const ev of events) applyStepEvent(steps, ev);
  const latest: RunEventView[] = events.slice(-EVENTS_SHOWN).map((e) => ({ type: e.type, stepKey: e.stepKey, timestamp: e.timestamp, message: e.message }));
  return {
    runId: run.runId,
    job: run.job,
    status: run.status,
    executor: run.executor,
    parentRunId: run.parentRunId,
    first: run.createdAt,
    last: run.endedAt ?? run.updatedAt,
    steps: [...steps.values()],
    events: latest,
  };
}
