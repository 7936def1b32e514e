/** One check for every executor: the job with dynamic outputs gives what executeInProcess gives. */
import { expect } from 'vitest';
import type { ExecutorDefinition, JobExecutionResult } from '../../src/index.ts';
import { executeJob } from '../../src/jobs/run.ts';
import defs from '../fixtures/dynamic-jobs.ts';

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
