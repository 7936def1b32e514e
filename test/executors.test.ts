import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Definitions, inProcessExecutor, job, JobReconstructionError, multiOrInProcessExecutor, multiprocessExecutor, op } from '../src/index.ts';
import defs, { pid, simple } from './fixtures/jobs.ts';
import { alive } from './helpers/util.ts';
import { expectSameAsInProcess } from './helpers/in-process.ts';

const dir = mkdtempSync(join(tmpdir(), 'weft-exec-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('executor precedence', () => {
  it('uses the job executor, else the Definitions executor, else multiOrInProcess', () => {
    const plain = job({ name: 'plain' }, () => pid());
    const own = job({ name: 'own', executorDef: inProcessExecutor }, () => pid());
    const withDefault = new Definitions({ jobs: [plain, own] });
    expect(withDefault.executorFor(plain)).toBe(multiOrInProcessExecutor);
    expect(withDefault.executorFor(own)).toBe(inProcessExecutor);
    const withExec = new Definitions({ jobs: [plain, own], executor: multiprocessExecutor });
    expect(withExec.executorFor(plain)).toBe(multiprocessExecutor);
    expect(withExec.executorFor(own)).toBe(inProcessExecutor);
  });

  it('executeInProcess runs in this process even when the job names the multiprocess executor', async () => {
    const r = await defs.getJob('pids').executeInProcess();
    expect(r.outputForNode('pid')).toBe(process.pid);
  });

  it('a job pinned to in-process runs here through Definitions too', async () => {
    const r = await defs.executeJob('pinned_in_process');
    expect(r.outputForNode('pid')).toBe(process.pid);
  });
});

describe('multiprocess executor', () => {
  it('runs every step in its own process and passes outputs between them', async () => {
    const r = await defs.executeJob('pids');
    expect(r.success).toBe(true);
    const stepPids = ['pid', 'add_one', 'pid_2'].map((k) => r.eventsForNode(k).find((e) => e.type === 'STEP_START')?.pid);
    expect(new Set([...stepPids, process.pid]).size).toBe(4);
    const produced = r.outputForNode('pid') as number;
    expect(produced).toBe(stepPids[0]);
    expect(r.outputForNode('add_one')).toBe(produced + 1);
    for (const p of stepPids) expect(alive(p as number)).toBe(false);
  });

  it('passes job inputs, constants and logs across processes, in order per step', async () => {
    const r = await defs.executeJob('from_graph', { inputValues: { x: 40 } });
    expect(r.outputForNode('add_one_2')).toBe(42);
    const logs = await defs.executeJob('logging');
    expect(logs.eventsForNode('logs').map((e) => e.type)).toEqual(['STEP_START', 'LOG', 'STEP_OUTPUT', 'STEP_SUCCESS']);
    expect(logs.eventsForNode('logs')[1]?.pid).not.toBe(process.pid);
    expect(logs.outputForNode('logs')).toBe(logs.runId);
  });

  it('reuses processes in warm mode', async () => {
    const r = await defs.executeJob('simple', { runConfig: { execution: { config: { multiprocess: { mode: 'warm', maxConcurrent: 1 } } } } });
    expect(r.outputForNode('add')).toBe(4);
    const stepPids = new Set(simple.steps.map((s) => r.eventsForNode(s.key).find((e) => e.type === 'STEP_START')?.pid));
    expect(stepPids.size).toBe(1);
    expect(stepPids.has(process.pid)).toBe(false);
  });

  it('the default executor runs in-process when the run config says in_process', async () => {
    const r = await defs.executeJob('simple', { runConfig: { execution: { config: { in_process: {} } } } });
    expect(r.eventsForNode('add')[0]?.pid).toBe(process.pid);
  });

  it('fails the step of a process killed by a signal, naming the signal, and the run fails cleanly', async () => {
    const r = await defs.executeJob('killed');
    expect(r.success).toBe(false);
    expect(r.failures.map((f) => f.stepKey)).toEqual(['dies']);
    expect(r.failures[0]?.error.message).toMatch(/was killed by SIGKILL while running step dies/);
    expect(r.stepsNotRun).toEqual(['add_one']);
    expect(r.outputForNode('one')).toBe(1);
  });

  it('reports the error of a step with its stack in the source files', async () => {
    const r = await defs.executeJob('failing');
    const f = r.failures[0]?.error;
    expect(f?.message).toContain('boom went the op');
    expect(f?.remoteStack).toMatch(/fixtures\/jobs\.ts:\d+:\d+/);
    expect(f?.remoteStack).not.toMatch(/steps-[0-9a-f]+\.mjs/);
  });

  it('fails a step whose output cannot cross processes, naming it', async () => {
    const r = await defs.executeJob('function_output');
    expect(r.success).toBe(false);
    expect(r.failures[0]?.error.message).toMatch(/output result of step makes_function cannot be sent to another process: it is a function/);
  });

  it('retries across processes', async () => {
    const file = join(dir, 'flaky-mp');
    const r = await defs.executeJob('retrying', { runConfig: { ops: { flaky: { config: { file, succeedOn: 1 } } } } });
    expect(r.success).toBe(true);
    const starts = r.eventsForNode('flaky').filter((e) => e.type === 'STEP_START').map((e) => e.pid);
    expect(starts).toHaveLength(2);
    expect(starts[0]).not.toBe(starts[1]);
  });

  it.each([1, 2])('a delayed retry below steps started ahead goes on with %i slot(s), and gives what executeInProcess gives', async (n) => {
    const r = await defs.executeJob('retry_fan', { runConfig: { execution: { config: { multiprocess: { maxConcurrent: n } } } } });
    await expectSameAsInProcess(r, defs.getJob('retry_fan'));
  });

  it('fails a step whose process breaks the protocol, naming why, instead of waiting for it forever', async () => {
    const r = await defs.executeJob('malformed');
    expect(r.success).toBe(false);
    expect(r.failures[0]?.error.message).toMatch(/step malformed lost its connection to the run's coordinator \(malformed message from step malformed: evs\.0\.type: /);
  });

  it('makes a failure final when retries are disabled in the executor config', async () => {
    const file = join(dir, 'flaky-disabled');
    const r = await defs.executeJob('retrying', { runConfig: { ops: { flaky: { config: { file, succeedOn: 1 } } }, execution: { config: { multiprocess: { retries: { disabled: {} } } } } } });
    expect(r.success).toBe(false);
    expect(r.failures.map((f) => f.stepKey).sort()).toEqual(['asks_retry', 'flaky']);
    expect(r.allEvents.some((e) => e.type === 'STEP_UP_FOR_RETRY')).toBe(false);
  });

  it('names the wrong path of an executor config', async () => {
    await expect(defs.executeJob('simple', { runConfig: { execution: { config: { multiprocess: { maxConcurrent: 0 } } } } })).rejects.toThrow(/execution\.config\.multiprocess\.maxConcurrent/);
  });

  it('respects tag concurrency limits', async () => {
    const r = await defs.executeJob('limited');
    expect(r.success).toBe(true);
    const spans = ['slow', 'slow_2', 'slow_3', 'slow_4'].map((k) => r.outputForNode(k) as [number, number, number]);
    const sorted = [...spans].sort((a, b) => a[1] - b[1]);
    for (let i = 1; i < sorted.length; i++) expect((sorted[i] as number[])[1]).toBeGreaterThanOrEqual((sorted[i - 1] as number[])[2] as number);
  });

  it('cancels a run: running step processes are stopped, the run ends canceled', async () => {
    const controller = new AbortController();
    const started: number[] = [];
    const done = defs.executeJob('sleepy', {
      signal: controller.signal,
      onEvent: (ev) => {
        if (ev.type === 'STEP_START' && ev.pid) started.push(ev.pid);
        if (started.length === 2) controller.abort();
      },
    });
    const r = await done;
    expect(r.canceled).toBe(true);
    expect(r.success).toBe(false);
    expect(r.allEvents.at(-1)?.type).toBe('RUN_CANCELED');
    for (const p of started) expect(alive(p)).toBe(false);
  });

  it('refuses at launch a job that cannot be rebuilt in another process', async () => {
    const makeDefs = (): Definitions => new Definitions({ jobs: [job({ name: 'inner', executorDef: multiprocessExecutor }, () => op({ name: 'x' }, () => 1)())] });
    await expect(makeDefs().executeJob('inner')).rejects.toThrow(JobReconstructionError);
    await expect(makeDefs().executeJob('inner')).rejects.toThrow(/top level of its module/);
  });
});
