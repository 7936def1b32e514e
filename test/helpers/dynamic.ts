/** One check for every executor: the job with dynamic outputs gives what executeInProcess gives. */
import { writeFileSync } from 'node:fs';
import { expect } from 'vitest';
import type { ExecutorDefinition, JobExecutionResult, RunEvent } from '../../src/index.ts';
import { executeJob } from '../../src/jobs/run.ts';
import type { Instance } from '../../src/runs/instance.ts';
import { reexecute } from '../../src/runs/reexecute.ts';
import defs, { mendMapped } from '../fixtures/dynamic-jobs.ts';

export const DYNAMIC_MODULE = new URL('../fixtures/dynamic-jobs.ts', import.meta.url).href;

const started = (r: JobExecutionResult): string[] => r.allEvents.filter((e) => e.type === 'STEP_START').map((e) => e.stepKey as string);

/** Runs `name` (default: mapped, a fan-out mapped through two ops and collected) with `exec`; resolves with its result. */
export async function expectDynamicLikeInProcess(exec: ExecutorDefinition, name = 'mapped', last = 'total'): Promise<JobExecutionResult> {
  const job = defs.getJob(name);
  const [here, there] = await Promise.all([job.executeInProcess(), executeJob(job, exec, { module: DYNAMIC_MODULE, jobName: name })]);
  expect(there.failures.map((f) => `${f.stepKey}: ${f.error.message}`)).toEqual([]);
  expect(there.success).toBe(true);
  expect(there.outputForNode(last)).toEqual(here.outputForNode(last));
  expect(started(there).sort()).toEqual(started(here).sort());
  return there;
}

/**
 * Runs cancel_mid_fan_out with `exec` and cancels it once both copies log
 * (the fan-out op still running); resolves with its result, canceled.
 */
export async function cancelMidFanOut(exec: ExecutorDefinition): Promise<JobExecutionResult> {
  const controller = new AbortController();
  let logs = 0;
  const r = await executeJob(defs.getJob('cancel_mid_fan_out'), exec, {
    module: DYNAMIC_MODULE,
    jobName: 'cancel_mid_fan_out',
  }, {
    signal: controller.signal,
    onEvent: (ev) => {
      if (ev.type === 'LOG' && ev.stepKey?.startsWith('waits_copy[') && ++logs === 2) controller.abort();
    },
  });
  expect(r.canceled).toBe(true);
  expect(started(r)).toEqual(expect.arrayContaining(['emits_then_waits', 'waits_copy[a]', 'waits_copy[b]']));
  expect(started(r)).not.toContain('total');
  return r;
}

/**
 * Runs failing_fan_out with `exec`: its op emits two items, then waits
 * until both copies have succeeded (so they ran while it still ran), and
 * fails. The copies' results stay; collect does not run.
 */
export async function expectCopiesWhileFanOutRuns(exec: ExecutorDefinition, flag: string): Promise<JobExecutionResult> {
  const events: RunEvent[] = [];
  const r = await executeJob(defs.getJob('failing_fan_out'), exec, { module: DYNAMIC_MODULE, jobName: 'failing_fan_out' }, {
    runConfig: { ops: { fails_late: { config: { flag } } } },
    onEvent: (ev) => {
      events.push(ev);
      if (ev.type === 'STEP_SUCCESS' && events.filter((e) => e.type === 'STEP_SUCCESS' && e.stepKey?.startsWith('square[')).length === 2) writeFileSync(flag, 'go');
    },
  });
  expect(r.success).toBe(false);
  expect(r.failures.map((f) => f.stepKey)).toEqual(['fails_late']);
  expect(r.outputForNode('square[a]')).toBe(1);
  expect(r.outputForNode('square[b]')).toBe(4);
  expect(started(r)).not.toContain('total');
  const endOfFanOut = events.findIndex((e) => e.type === 'STEP_FAILURE' && e.stepKey === 'fails_late');
  expect(events.findIndex((e) => e.type === 'STEP_SUCCESS' && e.stepKey === 'square[b]')).toBeLessThan(endOfFanOut);
  return r;
}

/**
 * Runs mend_mapped (with `exec`, or in process when null), whose copy
 * fragile[k1] fails until `flag` exists, then re-executes it from failure:
 * only that copy and what depends on it run again, with the first run's
 * mapping keys; the other copies' outputs load.
 */
export async function expectMendedCopies(instance: Instance, flag: string, exec: ExecutorDefinition | null): Promise<{ first: JobExecutionResult; again: JobExecutionResult }> {
  const runConfig = { ops: { fragile: { config: { flag } } } };
  const first = exec
    ? await executeJob(mendMapped, exec, { module: DYNAMIC_MODULE, jobName: 'mend_mapped' }, { instance, runConfig })
    : await mendMapped.executeInProcess({ instance, outputStore: instance.outputStore, runConfig });
  expect(first.success).toBe(false);
  expect(first.failures.map((f) => f.stepKey)).toEqual(['fragile[k1]']);
  expect(first.stepsNotRun).toEqual(expect.arrayContaining(['plus[k1]', 'total']));
  writeFileSync(flag, 'ready');
  const again = await reexecute(instance, first.runId, { fromFailure: true, ...(exec ? { executorDef: exec } : { job: mendMapped }) });
  expect(again.success).toBe(true);
  expect(started(again).sort()).toEqual(['fragile[k1]', 'plus[k1]', 'total']);
  expect(again.outputForNode('total')).toEqual({ sum: 360, xs: [110, 120, 130] });
  return { first, again };
}
