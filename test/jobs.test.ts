import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DefinitionError, job, op, RunConfigError, StepFailureError } from '../src/index.ts';
import { retryDelay } from '../src/jobs/retry.ts';
import defs, { branching, configured, failing, fromGraph, logging, nested, retrying, simple } from './fixtures/jobs.ts';

const dir = mkdtempSync(join(tmpdir(), 'weft-jobs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const types = (events: readonly { type: string }[]): string[] => events.map((e) => e.type);

describe('definitions and executeInProcess', () => {
  it('wires ops by calling them and returns outputs per node', async () => {
    const r = await simple.executeInProcess();
    expect(r.success).toBe(true);
    expect(simple.steps.map((s) => s.key)).toEqual(['one', 'add_one', 'one_2', 'add_one_2', 'add']);
    expect(r.outputForNode('add')).toBe(4);
    expect(r.outputForNode('add_one_2')).toBe(2);
    expect(types(r.eventsForNode('add'))).toEqual(['STEP_START', 'STEP_OUTPUT', 'STEP_SUCCESS']);
    expect(r.allEvents[0]?.type).toBe('RUN_START');
    expect(r.allEvents.at(-1)?.type).toBe('RUN_SUCCESS');
    for (const e of r.allEvents) {
      expect(e.runId).toBe(r.runId);
      expect(typeof e.timestamp).toBe('number');
    }
  });

  it('fails the run naming the failed step and the downstream steps it kept from running; other branches still run', async () => {
    const r = await failing.executeInProcess();
    expect(r.success).toBe(false);
    expect(r.failures.map((f) => f.stepKey)).toEqual(['boom']);
    const f = r.failures[0]?.error;
    expect(f).toBeInstanceOf(StepFailureError);
    expect(f?.remoteName).toBe('TypeError');
    expect(f?.message).toContain('boom went the op');
    expect(f?.remoteStack).toContain('boom went the op');
    expect(r.stepsNotRun).toEqual(['add_one']);
    expect(r.outputForNode('add_one_2')).toBe(2);
    const end = r.allEvents.at(-1);
    expect(end?.type).toBe('RUN_FAILURE');
    expect(end?.message).toContain('steps failed: boom');
    expect(end?.message).toContain('steps not run: add_one');
    expect(() => r.outputForNode('add_one')).toThrow(/did not produce output result/);
  });

  it('skips the steps downstream of an optional output that was not produced', async () => {
    const r = await branching.executeInProcess();
    expect(r.success).toBe(true);
    expect(r.outputForNode('split', 'evens')).toEqual([0]);
    expect(r.outputForNode('sum')).toBe(0);
    expect(types(r.eventsForNode('sum_2'))).toEqual(['STEP_SKIPPED']);
    expect(types(r.eventsForNode('add_one'))).toEqual(['STEP_SKIPPED']);
    expect(r.eventsForNode('sum_2')[0]?.message).toContain('output odds of step split was not produced');
  });

  it('validates run config with zod, naming the path that is wrong', async () => {
    expect((await configured.executeInProcess()).outputForNode('scaled')).toBe(2);
    expect((await configured.executeInProcess({ runConfig: { ops: { scaled: { config: { factor: 5 } } } } })).outputForNode('scaled')).toBe(5);
    await expect(configured.executeInProcess({ runConfig: { ops: { scaled: { config: { factor: 'x' } } } } })).rejects.toThrow(/ops\.scaled\.config\.factor: .*number/);
    await expect(configured.executeInProcess({ runConfig: { ops: { nope: {} } } })).rejects.toThrow(RunConfigError);
    await expect(configured.executeInProcess({ runConfig: { ops: { one: { config: 1 } } } })).rejects.toThrow(/ops\.one\.config: op one takes no config/);
  });

  it('streams ctx.log as LOG events with the step key, between start and success', async () => {
    const r = await logging.executeInProcess();
    expect(types(r.eventsForNode('logs'))).toEqual(['STEP_START', 'LOG', 'STEP_OUTPUT', 'STEP_SUCCESS']);
    const log = r.eventsForNode('logs')[1];
    expect(log?.message).toBe('hello from the op');
    expect(log?.level).toBe('info');
    expect(log?.data).toEqual({ n: 1 });
    expect(r.outputForNode('logs')).toBe(r.runId);
  });

  it('retries per the retry policy and on RetryRequested, with retry events', async () => {
    const file = join(dir, 'flaky-in-process');
    const r = await retrying.executeInProcess({ runConfig: { ops: { flaky: { config: { file, succeedOn: 2 } } } } });
    expect(r.success).toBe(true);
    expect(r.outputForNode('flaky')).toBe(2);
    expect(types(r.eventsForNode('flaky'))).toEqual(['STEP_START', 'STEP_UP_FOR_RETRY', 'STEP_RESTARTED', 'STEP_START', 'STEP_UP_FOR_RETRY', 'STEP_RESTARTED', 'STEP_START', 'STEP_OUTPUT', 'STEP_SUCCESS']);
    expect(r.outputForNode('asks_retry')).toBe('third time');
    const waits = r.eventsForNode('flaky').filter((e) => e.type === 'STEP_UP_FOR_RETRY').map((e) => e.retryInSeconds);
    expect(waits).toEqual([0.01, 0.03]); // exponential: (2^n - 1) x delay
    // Attempts are numbered as ctx.attempt is (0 first) in messages and fields alike; the op returned its ctx.attempt, 2.
    const restarts = r.eventsForNode('flaky').filter((e) => e.type === 'STEP_RESTARTED');
    expect(restarts.map((e) => [e.attempt, e.message])).toEqual([
      [1, 'step flaky: attempt 1 (retry 1)'],
      [2, 'step flaky: attempt 2 (retry 2)'],
    ]);
  });

  it('gives up after maxRetries', async () => {
    const file = join(dir, 'flaky-gives-up');
    const r = await retrying.executeInProcess({ runConfig: { ops: { flaky: { config: { file, succeedOn: 10 } } } } });
    expect(r.success).toBe(false);
    expect(r.failures.map((f) => f.stepKey)).toEqual(['flaky']);
    expect(r.eventsForNode('flaky').filter((e) => e.type === 'STEP_START')).toHaveLength(4);
  });

  it('computes retry delays the Dagster way', () => {
    expect(retryDelay({ maxRetries: 3, delay: 2 }, 3)).toBe(2);
    expect(retryDelay({ maxRetries: 3, delay: 2, backoff: 'linear' }, 3)).toBe(6);
    expect(retryDelay({ maxRetries: 3, delay: 2, backoff: 'exponential' }, 3)).toBe(14);
    expect(retryDelay({ maxRetries: 3, delay: 2, jitter: 'full' }, 1, () => 0.25)).toBe(0.5);
    expect(retryDelay({ maxRetries: 3, delay: 2, jitter: 'plusMinus' }, 1, () => 0.75)).toBe(3);
  });

  it('composes graphs: prefixed step keys inside a job, plain keys and job inputs for toJob', async () => {
    const r = await nested.executeInProcess();
    expect(nested.steps.map((s) => s.key)).toEqual(['one', 'inc2.add_one', 'inc2.add_one_2', 'one_2', 'inc2_2.add_one', 'inc2_2.add_one_2', 'add']);
    expect(r.outputForNode('add')).toBe(6);
    const g = await fromGraph.executeInProcess({ inputValues: { x: 10 } });
    expect(g.outputForNode('add_one_2')).toBe(12);
    await expect(fromGraph.executeInProcess()).rejects.toThrow(/inputValues\.x: job from_graph needs input x/);
  });

  it('builds asset jobs in dependency order, with upstream assets brought along', async () => {
    const all = await defs.getJob('all_assets').executeInProcess();
    expect(all.outputForNode('report')).toBe('1,2,3 from 3');
    const some = defs.getJob('just_sorted');
    expect(some.steps.map((s) => s.key)).toEqual(['raw', 'sorted']);
  });

  it('rejects wrong definitions with a clear error', () => {
    const o = op({ name: 'o' }, (_ctx, x: number) => x);
    expect(() => o(1)).toThrow(/outside a job or graph body/);
    expect(() => job({ name: 'bad name!' }, () => o(1))).toThrow(DefinitionError);
    expect(() => job({ name: 'arity' }, () => o())).toThrow(/needs 1 input/);
    expect(() => job({ name: 'empty' }, () => {})).toThrow(/has no steps/);
    expect(() => op({ name: 'r', retryPolicy: { maxRetries: -1 } }, () => 1)).toThrow(/maxRetries/);
  });
});
