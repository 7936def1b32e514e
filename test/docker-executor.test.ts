/**
 * The docker executor against a real dockerd (.ci/run starts one): every
 * step in a container of its own, made from the offline test image with
 * this checkout mounted at the same path (read-only) and host networking,
 * so `weft step` reaches the coordinator on 127.0.0.1.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { dockerExecutor, type ExecutorDefinition, type RunEvent } from '../src/index.ts';
import { executeJob } from '../src/jobs/run.ts';
import { WEFT_BIN } from '../src/cluster/local-cluster.ts';
import defs from './fixtures/step-jobs.ts';
import { containersLabelled, expectChainInOwnContainers, expectKilledContainerRetried, ROOT, testImage } from './helpers/docker-image.ts';
import { expectSameAsInProcess } from './helpers/in-process.ts';
import { expectMendedFromFailure } from './helpers/reexecution.ts';
import { cancelMidFanOut, DYNAMIC_MODULE, expectDynamicLikeInProcess } from './helpers/dynamic.ts';
import dynamicDefs from './fixtures/dynamic-jobs.ts';
import { Instance } from '../src/runs/instance.ts';
import { reexecute } from '../src/runs/reexecute.ts';

const MODULE = new URL('./fixtures/step-jobs.ts', import.meta.url).href;
const dir = mkdtempSync(join(tmpdir(), 'weft-docker-'));
let image = '';
let docker: ExecutorDefinition;

beforeAll(() => {
  image = testImage();
  docker = dockerExecutor.configured({ image, network: 'host', volumes: [`${ROOT}:${ROOT}:ro`] }) as ExecutorDefinition;
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(name: string, exec: ExecutorDefinition = docker, opts: Parameters<typeof executeJob>[3] = {}): ReturnType<typeof executeJob> {
  return executeJob(defs.getJob(name), exec, { module: MODULE, jobName: name }, opts);
}


describe('the docker executor (a real dockerd)', () => {
  it('runs each step in a container of its own, passing outputs from container to container, and leaves none', async () => {
    expectChainInOwnContainers(await run('chain3'));
  });

  it('gives the results executeInProcess gives, and what a step prints reaches this process', async () => {
    const printed: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      printed.push(String(chunk));
      return true;
    });
    try {
      for (const name of ['simple', 'failing', 'chatty']) {
        await expectSameAsInProcess(await run(name), defs.getJob(name));
      }
    } finally {
      spy.mockRestore();
    }
    expect(printed.join('')).toContain('[chatty] hello from a step process');
  });

  it.each([1, 2])('a delayed retry below steps started ahead goes on with %i slot(s)', async (n) => {
    await expectSameAsInProcess(await run('retry_fan', docker.configured({ maxConcurrent: n }) as ExecutorDefinition), defs.getJob('retry_fan'));
  });

  it('streams a LOG while the step is still running', async () => {
    const go = join(dir, 'go');
    // The step waits for a file the test writes once it has the LOG: the test's directory is mounted for that signal only.
    const withDir = dockerExecutor.configured({ image, network: 'host', volumes: [`${ROOT}:${ROOT}:ro`, `${dir}:${dir}:ro`] }) as ExecutorDefinition;
    const r = await run('long_step', withDir, { runConfig: { ops: { waits_for_go: { config: { file: go } } } }, onEvent: (ev) => ev.type === 'LOG' && writeFileSync(go, 'go') });
    expect(r.success).toBe(true);
    expect(r.eventsForNode('waits_for_go').map((e) => e.type)).toEqual(['STEP_START', 'LOG', 'STEP_OUTPUT', 'STEP_SUCCESS']);
  });

  it('docker kill of a step container fails it with the signal, and the retry policy reruns it', async () => {
    await expectKilledContainerRetried((onEvent) => run('killable', docker, { onEvent }));
  });

  it('a memory limit in containerOptions gives OOMKilled', async () => {
    const r = await run('hog', dockerExecutor.configured({ image, network: 'host', volumes: [`${ROOT}:${ROOT}:ro`], containerOptions: { HostConfig: { Memory: 128 * 1024 * 1024, MemorySwap: 128 * 1024 * 1024 } } }) as ExecutorDefinition);
    expect(r.success).toBe(false);
    expect(r.failures[0]?.error.message).toMatch(/exited with code 137 \(OOMKilled/);
  });

  it('re-executes from failure a run whose step failed inside a container: the rest load from the first run', async () => {
    const instance = await Instance.open({ home: join(dir, 'home') });
    try {
      const withDir = dockerExecutor.configured({ image, network: 'host', volumes: [`${ROOT}:${ROOT}:ro`, `${dir}:${dir}:ro`] }) as ExecutorDefinition;
      await expectMendedFromFailure(instance, join(dir, 'flag'), (runConfig) => run('mend', withDir, { instance, runConfig }), (runId) => reexecute(instance, runId, { fromFailure: true, executorDef: withDir }));
    } finally {
      await instance.close();
    }
  });

  it('runs a job with dynamic outputs: a container per mapped copy, the results executeInProcess gives, none left', async () => {
    const r = await expectDynamicLikeInProcess(docker, 'mapped');
    expect(containersLabelled(`weft.run=${r.runId}`)).toEqual([]);
  });

  it('a mapped copy killed with -9 in its container is retried by its retry policy; a run cancelled mid-fan-out leaves no container', async () => {
    const r = await executeJob(dynamicDefs.getJob('dies_once_mapped'), docker, { module: DYNAMIC_MODULE, jobName: 'dies_once_mapped' });
    expect(r.success).toBe(true);
    expect(r.eventsForNode('dies_once[k1]').map((e) => e.type)).toContain('STEP_UP_FOR_RETRY');
    expect(r.outputForNode('total')).toEqual({ sum: 6, xs: [1, 2, 3] });
    const c = await cancelMidFanOut(docker);
    expect(containersLabelled(`weft.run=${c.runId}`)).toEqual([]);
  });

  it('cancelling the run stops its containers and leaves none', async () => {
    const controller = new AbortController();
    let logs = 0;
    const r = await run('cancellable', docker, {
      signal: controller.signal,
      onEvent: (ev) => {
        if (ev.type === 'LOG' && ++logs === 2) controller.abort();
      },
    });
    expect(r.canceled).toBe(true);
    expect(r.failures.map((f) => f.error.remoteName)).toEqual(['CancelledError', 'CancelledError']);
    expect(containersLabelled(`weft.run=${r.runId}`)).toEqual([]);
  });

  it('fails the run at once, naming an image that does not exist', async () => {
    const t0 = Date.now();
    const r = await run('simple', dockerExecutor.configured({ image: 'weft-no-such-image:1', network: 'host' }) as ExecutorDefinition);
    expect(r.success).toBe(false);
    expect(r.allEvents.some((e) => e.type === 'STEP_START')).toBe(false);
    expect(r.allEvents.at(-1)?.message).toMatch(/image weft-no-such-image:1 does not exist/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('two runs of one job at once do not collide', async () => {
    const [a, b] = await Promise.all([run('simple'), run('simple')]);
    // The failures first: when a run fails, they say why.
    expect(a?.failures.map((f) => `${f.stepKey}: ${f.error.message}`)).toEqual([]);
    expect(b?.failures.map((f) => `${f.stepKey}: ${f.error.message}`)).toEqual([]);
    expect([a, b].flatMap((r) => r?.allEvents.filter((e) => e.type === 'RUN_FAILURE' || e.type === 'ENGINE_EVENT').map((e) => e.message) ?? [])).toEqual([]);
    expect(a?.success).toBe(true);
    expect(b?.success).toBe(true);
    expect(a?.outputForNode('add')).toBe(4);
    expect(b?.outputForNode('add')).toBe(4);
    expect(a?.runId).not.toBe(b?.runId);
  });

  it("takes env from its config, an op's weft/docker tag over it", async () => {
    process.env['WEFT_TEST_VAR'] = 'copied from the launching process';
    try {
      const r = await run('env', dockerExecutor.configured({ image, network: 'host', volumes: [`${ROOT}:${ROOT}:ro`], env: ['WEFT_TEST_VAR'] }) as ExecutorDefinition);
      expect(r.outputForNode('reads_env')).toBe('copied from the launching process');
      expect(r.outputForNode('reads_env_tagged')).toBe('from the op tag');
    } finally {
      delete process.env['WEFT_TEST_VAR'];
    }
  });

  it('refuses containerOptions that set the image, env or network, naming the path', async () => {
    await expect(run('simple', dockerExecutor.configured({ image, containerOptions: { Image: 'x', HostConfig: { NetworkMode: 'host' } } }) as ExecutorDefinition)).rejects.toThrow(/execution\.config\.containerOptions\.Image: Image is set by weft[\s\S]*containerOptions\.HostConfig\.NetworkMode/);
  });

  it('weft run killed with -9: the run monitor fails its run and removes the containers it left', async () => {
    const home = join(dir, 'killed-home');
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, 'weft.yaml'), 'runMonitor:\n  heartbeatInterval: 200ms\n  heartbeatTimeout: 1s\n');
    const env = { ...process.env, WEFT_TEST_IMAGE: image, WEFT_HOME: home };
    const child = spawn(process.execPath, [WEFT_BIN, 'run', join(ROOT, 'test/fixtures/step-jobs.ts'), '--job', 'cancellable_in_docker', '--json'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let runId = '';
    let logs = 0;
    for await (const line of createInterface({ input: child.stdout })) {
      const ev = JSON.parse(line) as RunEvent;
      runId ||= ev.runId;
      if (ev.type === 'LOG' && ++logs === 2) child.kill('SIGKILL');
    }
    await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve)));
    expect(containersLabelled(`weft.run=${runId}`).length).toBeGreaterThan(0);
    // Any weft runs command runs the monitor before it reads.
    const list = async (): Promise<{ runId: string; status: string }[]> => {
      const out = execFileSync(process.execPath, [WEFT_BIN, 'runs', 'list', '--json'], { env, encoding: 'utf8' });
      return JSON.parse(out) as { runId: string; status: string }[];
    };
    await vi.waitFor(async () => expect((await list()).find((r) => r.runId === runId)?.status).toBe('FAILURE'), { timeout: 20_000, interval: 300 });
    expect(containersLabelled(`weft.run=${runId}`)).toEqual([]);
    const logsOut = execFileSync(process.execPath, [WEFT_BIN, 'runs', 'logs', runId], { env, encoding: 'utf8' });
    expect(logsOut).toMatch(/wrote no heartbeat for/);
    expect(logsOut).toMatch(/run monitor: removed [1-9]\d* leftover\(s\) of the run's steps \(executor docker\)/);
  });

  it('Ctrl-C of weft run stops the run and its containers (exit 130)', async () => {
    const child = spawn(process.execPath, [WEFT_BIN, 'run', join(ROOT, 'test/fixtures/step-jobs.ts'), '--job', 'cancellable_in_docker', '--json'], { env: { ...process.env, WEFT_TEST_IMAGE: image }, stdio: ['ignore', 'pipe', 'inherit'] });
    const events: RunEvent[] = [];
    let logs = 0;
    for await (const line of createInterface({ input: child.stdout })) {
      const ev = JSON.parse(line) as RunEvent;
      events.push(ev);
      if (ev.type === 'LOG' && ++logs === 2) child.kill('SIGINT');
    }
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).toBe(130);
    expect(events.at(-1)?.type).toBe('RUN_CANCELED');
    expect(containersLabelled(`weft.run=${events[0]?.runId}`)).toEqual([]);
  });
});
