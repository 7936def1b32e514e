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
