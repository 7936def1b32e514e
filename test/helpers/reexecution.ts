/** The re-execution every executor's tests check: a run fails at one step, then re-executes from failure. */
import { rmSync, writeFileSync } from 'node:fs';
import { expect } from 'vitest';
import type { JobExecutionResult, RunConfig } from '../../src/index.ts';
import type { Instance } from '../../src/runs/instance.ts';
import { PARENT_RUN_TAG, ROOT_RUN_TAG } from '../../src/runs/records.ts';

/**
 * Job `mend` (fixtures/step-jobs.ts) with gate's flag up: base, double and
 * side succeed, gate fails, report never runs. With the flag down, the
 * re-execution from failure runs gate and report only, gate taking double's
 * output from the first run.
 */
export async function expectMendedFromFailure(instance: Instance, flag: string, launch: (runConfig: RunConfig) => Promise<JobExecutionResult>, reexecute: (runId: string) => Promise<JobExecutionResult>): Promise<{ first: JobExecutionResult; second: JobExecutionResult }> {
  writeFileSync(flag, 'up');
  const first = await launch({ ops: { gate: { config: { flag } } } });
  expect(first.success).toBe(false);
  expect(first.failures.map((f) => f.stepKey)).toEqual(['gate']);
  expect(first.stepsNotRun).toEqual(['report']);
  expect((await instance.storage.getRun(first.runId))?.status).toBe('FAILURE');

  rmSync(flag);
  const second = await reexecute(first.runId);
  expect(second.success, second.allEvents.map((e) => e.message).join('\n')).toBe(true);
  const started = second.allEvents.filter((e) => e.type === 'STEP_START').map((e) => e.stepKey);
  expect([...new Set(started)].sort()).toEqual(['gate', 'report']);
  expect(second.outputForNode('report')).toBe('answer: 42');
  const stored = await instance.storage.getRun(second.runId);
  expect(stored?.status).toBe('SUCCESS');
  expect(stored?.tags[PARENT_RUN_TAG]).toBe(first.runId);
  expect(stored?.tags[ROOT_RUN_TAG]).toBe(first.runId);
  expect(stored?.stepKeys).toEqual(['gate', 'report']);
  return { first, second };
}
