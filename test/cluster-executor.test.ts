/**
 * The cluster executor against real clusters over loopback: a shared
 * LocalCluster (two worker processes, one of them with a GPU resource)
 * used as an existing cluster, and clusters of its own where a test kills
 * workers or needs a token.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterExecutor, LocalCluster, type JobExecutionResult, type RunConfig, type RunEvent } from '../src/index.ts';
import { executeJob, type ExecuteOptions } from '../src/jobs/run.ts';
import jobs from './fixtures/jobs.ts';
import clusterJobs from './fixtures/cluster-jobs.ts';
import unloadable from './fixtures/main-thread-only.ts';
import { alive, waitFor } from './helpers/util.ts';
import { expectMendedFromFailure } from './helpers/reexecution.ts';
import { Instance } from '../src/runs/instance.ts';
import { reexecute } from '../src/runs/reexecute.ts';
import type { ExecutorDefinition } from '../src/jobs/executor.ts';
import { Client } from '../src/client/client.ts';
import dynamicJobs from './fixtures/dynamic-jobs.ts';
import { cancelMidFanOut, DYNAMIC_MODULE, expectCopiesWhileFanOutRuns, expectDynamicLikeInProcess, expectMendedCopies } from './helpers/dynamic.ts';

const dir = mkdtempSync(join(tmpdir(), 'weft-cluster-exec-'));
let cluster: LocalCluster;

beforeAll(async () => {
  cluster = await LocalCluster.start({ workers: 2, resources: [{ GPU: 1 }, {}] });
});

afterAll(async () => {
  await cluster?.close();
  rmSync(dir, { recursive: true, force: true });
});

const onCluster = (address: string, token?: string): RunConfig['execution'] => ({ config: { cluster: { existing: token === undefined ? { address } : { address, token } } } });

/** Runs a job of the cluster-jobs code location on the shared cluster (or `execution`). */
function run(name: string, opts: ExecuteOptions & { ops?: RunConfig['ops']; execution?: RunConfig['execution'] } = {}): Promise<JobExecutionResult> {
  const { ops, execution, ...rest } = opts;
  return clusterJobs.executeJob(name, { ...rest, runConfig: { ...(ops ? { ops } : {}), execution: execution ?? onCluster(cluster.address) } });
}

/** A promise for the first event that matches, and the onEvent hook that resolves it. */
function firstEvent(match: (ev: RunEvent) => boolean): { seen: Promise<RunEvent>; onEvent: (ev: RunEvent) => void } {
  let resolve!: (ev: RunEvent) => void;
  const seen = new Promise<RunEvent>((r) => (resolve = r));
  return { seen, onEvent: (ev) => (match(ev) ? resolve(ev) : undefined) };
}

const stepView = (r: JobExecutionResult, key: string): string[] => r.eventsForNode(key).map((e) => `${e.type}${e.output ? `:${e.output}` : ''}${e.type === 'LOG' ? `:${e.message}` : ''}`);

describe('cluster executor: the same results as in-process', () => {
  const cases: [string, ExecuteOptions][] = [
    ['simple', {}],
    ['failing', {}],
    ['branching', {}],
    ['configured', {}],
    ['logging', {}],
    ['from_graph', { inputValues: { x: 40 } }],
    ['nested', {}],
    ['all_assets', {}],
    ['function_output', {}],
  ];
  it.each(cases)('%s', async (name, opts) => {
    const job = jobs.getJob(name);
    const executorDef = clusterExecutor.configured({ cluster: { existing: { address: cluster.address } } });
    const here = await job.executeInProcess(opts);
    const there = await executeJob(job, executorDef, { module: jobs.location as string, jobName: name }, opts);
    // function_output: in-process keeps a function as an output; the cluster cannot, and says so.
    expect(there.success).toBe(name === 'function_output' ? false : here.success);
    expect(there.stepsNotRun).toEqual(here.stepsNotRun);
    if (name !== 'function_output') expect(there.failures.map((f) => [f.stepKey, f.error.remoteName])).toEqual(here.failures.map((f) => [f.stepKey, f.error.remoteName]));
    for (const step of job.steps) {
      if (name === 'function_output') continue;
      expect(stepView(there, step.key)).toEqual(stepView(here, step.key));
      for (const ev of here.eventsForNode(step.key).filter((e) => e.type === 'STEP_OUTPUT')) {
        // An output naming its run (the logging job's) names each run's own.
        const mine = (r: JobExecutionResult): unknown => {
          const v = r.outputForNode(step.key, ev.output);
          return v === r.runId ? 'RUN_ID' : v;
        };
        expect(mine(there)).toEqual(mine(here));
      }
    }
    // Steps ran in the workers, not here.
    const pids = new Set(there.allEvents.filter((e) => e.type === 'STEP_START').map((e) => e.pid));
    for (const p of pids) expect(cluster.workers.map((w) => w.pid)).toContain(p);
    if (name === 'function_output') expect(there.failures[0]?.error.message).toMatch(/output result of step makes_function is a function/);
  });

  it('retries with the op retry policy and RetryRequested, inside the step task', async () => {
    const job = jobs.getJob('retrying');
    const ops = (file: string): RunConfig => ({ ops: { flaky: { config: { file, succeedOn: 2 } } } });
    const here = await job.executeInProcess({ runConfig: ops(join(dir, 'flaky-here')) });
    const executorDef = clusterExecutor.configured({ cluster: { existing: { address: cluster.address } } });
    const there = await executeJob(job, executorDef, { module: jobs.location as string, jobName: 'retrying' }, { runConfig: ops(join(dir, 'flaky-there')) });
    expect(there.success).toBe(true);
    for (const key of ['flaky', 'asks_retry']) expect(stepView(there, key)).toEqual(stepView(here, key));
    expect(there.outputForNode('flaky')).toBe(2);
    expect(there.outputForNode('asks_retry')).toBe('third time');
  });
});

describe('cluster executor: events, placement, failures', () => {
  it('streams a step event to this process while the step still runs', async () => {
    const go = join(dir, 'go-long');
    const hook = firstEvent((ev) => ev.type === 'LOG' && ev.message === 'waiting for go');
    const result = run('long_step', { ops: { waits_for_go: { config: { file: go } } }, onEvent: hook.onEvent });
    await hook.seen;
    // The step cannot end before this file exists: the log came while it ran.
    expect(existsSync(go)).toBe(false);
    writeFileSync(go, 'go');
    const r = await result;
    expect(r.success).toBe(true);
    expect(r.eventsForNode('waits_for_go').map((e) => e.type)).toEqual(['STEP_START', 'LOG', 'STEP_OUTPUT', 'STEP_SUCCESS']);
  });

  it('runs steps tagged weft/resources only on workers with the resource', async () => {
    const [gpuWorker] = cluster.workers;
    const r = await run('gpu');
    expect(r.success).toBe(true);
    for (let i = 0; i < 4; i++) expect(r.outputForNode(i === 0 ? 'on_gpu' : `on_gpu_${i + 1}`)).toBe(gpuWorker?.pid);
  });

  it('fails a step no worker has the resources for at once, with the reason, and runs the rest', async () => {
    const t0 = performance.now();
    const r = await run('tpu');
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(r.success).toBe(false);
    expect(r.failures.map((f) => f.stepKey)).toEqual(['on_tpu']);
    expect(r.failures[0]?.error.message).toMatch(/step on_tpu needs resources \{"TPU":2\} \(op tag weft\/resources\), and no worker of the cluster at ws:\/\/127\.0\.0\.1:\d+ has them/);
    expect(r.stepsNotRun).toEqual(['plus_one']);
    expect(r.outputForNode('plus_one_2')).toBe((r.outputForNode('where') as number) + 1);
  });

  it('fails the steps with the reason when the workers cannot load the code location', async () => {
    const r = await unloadable.executeJob('unloadable', { runConfig: { execution: onCluster(cluster.address) } });
    expect(r.success).toBe(false);
    expect(r.failures.map((f) => f.stepKey)).toEqual(['one']);
    expect(r.failures[0]?.error.message).toMatch(/^step one failed: DefinitionError: cannot import .*main-thread-only\.ts: this code location loads only in a main thread/);
    expect(r.stepsNotRun).toEqual(['plus']);
  });

  it('runs the edited code location when it changed since the workers imported it', async () => {
    const file = join(dir, 'edited.ts');
    const weft = new URL('../src/index.ts', import.meta.url).href;
    const source = (n: number): string => `import { Definitions, job, op } from '${weft}';\nconst n = op({ name: 'n' }, () => ${n});\nexport default new Definitions({ jobs: [job({ name: 'edited' }, () => void n())] });\n`;
    writeFileSync(join(dir, 'package.json'), '{ "type": "module" }');
    writeFileSync(file, source(1));
    const { loadDefinitions } = await import('../src/index.ts');
    const edited = await loadDefinitions(file);
    const executorDef = clusterExecutor.configured({ cluster: { existing: { address: cluster.address } } });
    const first = await executeJob(edited.getJob('edited'), executorDef, { module: edited.location as string, jobName: 'edited' });
    expect(first.outputForNode('n')).toBe(1);
    // Edited: the workers follow their modules and import it anew (at once, even before their file watchers say so).
    writeFileSync(file, source(2));
    const second = await executeJob(edited.getJob('edited'), executorDef, { module: edited.location as string, jobName: 'edited' });
    expect(second.success).toBe(true);
    expect(second.outputForNode('n')).toBe(2);
  });

  it('re-executes from failure; the workers write each output to the output store themselves', async () => {
    const stored: boolean[] = [];
    const instance = await Instance.open({ home: join(dir, 'home') });
    try {
      const exec = clusterExecutor.configured({ cluster: { existing: { address: cluster.address } } }) as ExecutorDefinition;
      const stepJobs = (await import('./fixtures/step-jobs.ts')).default;
      const module = new URL('./fixtures/step-jobs.ts', import.meta.url).href;
      const { first } = await expectMendedFromFailure(
        instance,
        join(dir, 'flag'),
        (runConfig) => executeJob(stepJobs.getJob('mend'), exec, { module, jobName: 'mend' }, { instance, runConfig, onEvent: (ev) => ev.type === 'STEP_OUTPUT' && stored.push(ev.stored === true) }),
        (runId) => reexecute(instance, runId, { fromFailure: true, executorDef: exec }),
      );
      expect(stored.length).toBeGreaterThan(0);
      expect(stored.every(Boolean)).toBe(true);
      expect(await instance.outputStore.has({ runId: first.runId, stepKey: 'double', output: 'result' })).toBe(true);
    } finally {
      await instance.close();
    }
  });

  it('runs two runs of one job at once without collisions', async () => {
    const go = join(dir, 'go-pair');
    const ops = { pair: { config: { file: go } } };
    let starts = 0;
    let bothStarted!: () => void;
    const overlap = new Promise<void>((r) => (bothStarted = r));
    const onEvent = (ev: RunEvent): void => {
      if (ev.type === 'STEP_START' && ev.stepKey === 'pair' && ++starts === 2) bothStarted();
    };
    const a = run('overlapping', { ops, onEvent });
    const b = run('overlapping', { ops, onEvent });
    // Both runs' `pair` steps run at the same time (one per worker), then both finish.
    await overlap;
    writeFileSync(go, 'go');
    const [ra, rb] = await Promise.all([a, b]);
    for (const r of [ra, rb]) {
      expect(r.success).toBe(true);
      expect(r.outputForNode('total')).toBe(15);
      expect(r.allEvents.every((e) => e.runId === r.runId)).toBe(true);
    }
    expect(ra.runId).not.toBe(rb.runId);
  });

  it('cancelling a run stops its running step through its signal and leaves another run alone', async () => {
    const flag = join(dir, 'cancelled-flag');
    const controller = new AbortController();
    const hook = firstEvent((ev) => ev.type === 'LOG' && ev.message === 'watching');
    const cancelled = run('cancellable', { ops: { watches_cancel: { config: { file: flag } } }, signal: controller.signal, onEvent: hook.onEvent });
    const go = join(dir, 'go-other');
    const otherHook = firstEvent((ev) => ev.type === 'LOG' && ev.message === 'waiting for go');
    const other = run('long_step', { ops: { waits_for_go: { config: { file: go } } }, onEvent: otherHook.onEvent });
    await Promise.all([hook.seen, otherHook.seen]);
    controller.abort();
    const r = await cancelled;
    expect(r.canceled).toBe(true);
    expect(r.failures.map((f) => [f.stepKey, f.error.remoteName])).toEqual([['watches_cancel', 'CancelledError']]);
    expect(r.stepsNotRun).toContain('plus_one');
    // The step itself saw the cancellation on its worker (no event announces a file written there).
    await waitFor(() => existsSync(flag), 10_000, 'the cancelled step to see its signal');
    writeFileSync(go, 'go');
    expect((await other).success).toBe(true);
  });
});

describe('cluster executor: dynamic outputs', () => {
  // Threads enough for a fan-out op and two copies at once (cancel_mid_fan_out holds all three).
  let dyn: LocalCluster;
  let exec: ExecutorDefinition;
  beforeAll(async () => {
    dyn = await LocalCluster.start({ workers: 2, threadsPerWorker: 2 });
    exec = clusterExecutor.configured({ cluster: { existing: { address: dyn.address } } }) as ExecutorDefinition;
  });
  afterAll(async () => {
    await dyn?.close();
  });

  it('maps, nests, collects and takes two dynamic outputs as executeInProcess does; an empty output runs no copy', async () => {
    for (const [name, last] of [['mapped', 'total'], ['nested', 'total'], ['two_outputs', 'both']] as const) {
      const r = await expectDynamicLikeInProcess(exec, name, last);
      // Steps ran in the workers, not here.
      for (const e of r.allEvents.filter((ev) => ev.type === 'STEP_START')) expect(dyn.workers.map((w) => w.pid)).toContain(e.pid);
    }
    const runConfig = { ops: { letters: { config: { n: 0 } } } };
    const empty = await executeJob(dynamicJobs.getJob('mapped'), exec, { module: DYNAMIC_MODULE, jobName: 'mapped' }, { runConfig });
    expect(empty.success).toBe(true);
    expect(empty.outputForNode('total')).toEqual({ sum: 0, xs: [] });
    expect(empty.allEvents.filter((e) => e.type === 'STEP_START').map((e) => e.stepKey).sort()).toEqual(['base', 'letters', 'total']);
    // Outputs left on the cluster (weft run's way): the fan-out's record stays until the run ends, so copies submitted late still find their items.
    const lean = clusterExecutor.configured({ cluster: { existing: { address: dyn.address } }, fetchOutputs: false }) as ExecutorDefinition;
    const left = await executeJob(dynamicJobs.getJob('nested'), lean, { module: DYNAMIC_MODULE, jobName: 'nested' });
    expect(left.success).toBe(true);
    expect(left.allEvents.filter((e) => e.type === 'STEP_SUCCESS')).toHaveLength(1 + 3 + 6 + 3 + 1);
  });

  it("a fan-out's items, published in lists, all come, in emission order, before its end", async () => {
    const n = 700;
    const r = await executeJob(dynamicJobs.getJob('mapped'), exec, { module: DYNAMIC_MODULE, jobName: 'mapped' }, { runConfig: { ops: { letters: { config: { n } } } } });
    expect(r.failures.map((f) => f.error.message)).toEqual([]);
    // The run's own end too: fetching the outputs can fail the run with no step failed.
    expect(r.success, r.allEvents.at(-1)?.message).toBe(true);
    const fromLetters = r.allEvents.filter((e) => e.stepKey === 'letters').map((e) => (e.type === 'STEP_OUTPUT' ? e.output : e.type));
    const items = Array.from({ length: n }, (_, i) => `result[k${i}]`);
    expect(fromLetters).toEqual(['STEP_START', ...items, 'STEP_SUCCESS']);
    expect((r.outputForNode('total') as { sum: number }).sum).toBe(Array.from({ length: n }, (_, i) => (i + 1) ** 2 + 100).reduce((a, b) => a + b, 0));
  });

  it('copies start on the cluster while the op emitting their items still runs; when it then fails, collect does not run', async () => {
    await expectCopiesWhileFanOutRuns(exec, join(dir, 'dyn-fail-now'));
  });

  it('re-executes from failure only the failed copy and what depends on it; the other copies load', async () => {
    const instance = await Instance.open({ home: join(dir, 'dyn-home') });
    try {
      await expectMendedCopies(instance, join(dir, 'dyn-mend'), exec);
    } finally {
      await instance.close();
    }
  });

  it('a run cancelled mid-fan-out leaves nothing running or held on the cluster', async () => {
    await cancelMidFanOut(exec);
    const client = await Client.connect(dyn.address);
    try {
      await waitFor(async () => (await client.workers()).every((w) => w.processing === 0 && w.stored === 0), 10_000, 'the cluster to let go of the run');
    } finally {
      await client.close();
    }
  });
});

describe('cluster executor: clusters of its own', () => {
  it('reruns the step of a worker killed with kill -9 elsewhere, and the run succeeds', async () => {
    const own = await LocalCluster.start({ workers: 2 });
    try {
      const go = join(dir, 'go-survive');
      const starts: RunEvent[] = [];
      let restarted!: () => void;
      const again = new Promise<void>((r) => (restarted = r));
      const onEvent = (ev: RunEvent): void => {
        if (ev.stepKey !== 'waits_for_go' || ev.type !== 'STEP_START') return;
        starts.push(ev);
        if (starts.length === 1) process.kill(ev.pid as number, 'SIGKILL');
        else restarted();
      };
      const result = run('survives', { ops: { waits_for_go: { config: { file: go } } }, onEvent, execution: onCluster(own.address) });
      await again;
      writeFileSync(go, 'go');
      const r = await result;
      expect(r.success).toBe(true);
      expect(starts[1]?.pid).not.toBe(starts[0]?.pid);
      expect(r.outputForNode('waits_for_go')).toBe(starts[1]?.pid);
      expect(r.allEvents.some((e) => e.type === 'ENGINE_EVENT' && /started again on another worker/.test(e.message))).toBe(true);
      expect(r.outputForNode('plus_total')).toBe(45 + (starts[1]?.pid as number));
    } finally {
      await own.close();
    }
  });

  it('uses an existing cluster that requires a token, and fails clearly with a wrong one', async () => {
    const own = await LocalCluster.start({ workers: 1, token: 's3cret' });
    try {
      const ok = await run('gpu', { execution: onCluster(own.address, 's3cret') });
      // No worker of this cluster has a GPU: those steps fail, the others run.
      expect(ok.failures.map((f) => f.stepKey)).toHaveLength(4);
      expect(ok.outputForNode('where')).toBe(own.workers[0]?.pid);
      const bad = await run('gpu', { execution: onCluster(own.address, 'wrong') });
      expect(bad.success).toBe(false);
      expect(bad.allEvents.at(-1)?.message).toMatch(/token/i);
    } finally {
      await own.close();
    }
  });

  it('starts a local cluster for the run and stops it after', async () => {
    const r = await clusterJobs.executeJob('on_local_cluster');
    expect(r.success).toBe(true);
    const pid = r.outputForNode('where') as number;
    expect(r.outputForNode('plus_one_2')).toBe(pid + 2);
    expect(pid).not.toBe(process.pid);
    expect(alive(pid)).toBe(false);
  });
});
