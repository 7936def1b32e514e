/** The check every executor's tests make: a run gives what `executeInProcess` gives. */
import { expect } from 'vitest';
import type { JobDefinition, JobExecutionResult } from '../../src/index.ts';

/**
 * Same success, the same steps not run, the same event types per step in
 * order, and the same output values (except the steps in `skipValues`, whose
 * outputs name their run or process).
 */
export async function expectSameAsInProcess(mine: JobExecutionResult, job: JobDefinition, skipValues: readonly string[] = ['logs']): Promise<void> {
  const ref = await job.executeInProcess();
  expect(mine.success, job.name).toBe(ref.success);
  expect(mine.stepsNotRun).toEqual(ref.stepsNotRun);
  for (const s of job.steps) {
    expect(mine.eventsForNode(s.key).map((e) => e.type), `${job.name}/${s.key}`).toEqual(ref.eventsForNode(s.key).map((e) => e.type));
    if (skipValues.includes(s.key)) continue;
    for (const e of ref.eventsForNode(s.key)) if (e.type === 'STEP_OUTPUT') expect(mine.outputForNode(s.key, e.output)).toEqual(e.value);
  }
}
