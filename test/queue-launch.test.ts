/**
 * The queue executor with `launch`: real `weft queue-worker` processes take
 * the steps from a real Redis and start each in a container of its own on
 * a real dockerd (celery_docker_executor's role), or as a Job on the fake
 * Kubernetes API server (celery_k8s_job_executor's; no API server can run
 * here). The launching process and the workers meet only at Redis.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueExecutor, type ExecutorDefinition } from '../src/index.ts';
import { executeJob } from '../src/jobs/run.ts';
import { WEFT_BIN } from '../src/cluster/local-cluster.ts';
import defs from './fixtures/step-jobs.ts';
import { startRedis, type TestRedis } from './helpers/redis.ts';
import { containersLabelled, expectChainInOwnContainers, expectKilledContainerRetried, ROOT, testImage } from './helpers/docker-image.ts';
import { startFakeK8s, type FakeK8s } from './helpers/fake-k8s.ts';
import { expectSameAsInProcess } from './helpers/in-process.ts';

const MODULE = new URL('./fixtures/step-jobs.ts', import.meta.url).href;
const K8S_IMAGE = 'registry.test/weft-steps:1';
const dir = mkdtempSync(join(tmpdir(), 'weft-queue-launch-'));
let redis: TestRedis;
let fake: FakeK8s;
let image = '';
const workers: ChildProcess[] = [];

async function startWorker(args: string[] = []): Promise<ChildProcess> {
  // The checkout is mounted into the step containers: the workers allow that mount; Kubernetes credentials are the workers' own.
  const proc = spawn(process.execPath, [WEFT_BIN, 'queue-worker', '--redis', redis.url, '--concurrency', '4', '--allow-mount', ROOT, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, WEFT_LOG_LEVEL: 'warn', KUBECONFIG: fake.kubeconfig } });
  workers.push(proc);
  const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
  for await (const line of lines) if (line.startsWith('{')) break;
  return proc;
}

beforeAll(async () => {
  image = testImage();
  [redis, fake] = await Promise.all([startRedis(), startFakeK8s({ images: [K8S_IMAGE], weftBin: join(ROOT, 'bin/weft.js'), dir })]);
  await Promise.all([startWorker(), startWorker()]);
}, 120_000);
afterAll(async () => {
  await Promise.all(
    workers.map(async (p) => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      const exited = once(p, 'exit');
      p.kill('SIGTERM');
      await exited;
    }),
  );
  await Promise.all([redis?.stop(), fake?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

function inDocker(): ExecutorDefinition {
  return queueExecutor.configured({ redis: redis.url, healthCheckIntervalSeconds: 0.5, launch: { docker: { image, network: 'host', volumes: [`${ROOT}:${ROOT}:ro`] } } }) as ExecutorDefinition;
}

function run(name: string, exec: ExecutorDefinition, opts: Parameters<typeof executeJob>[3] = {}): ReturnType<typeof executeJob> {
  return executeJob(defs.getJob(name), exec, { module: MODULE, jobName: name }, opts);
}

describe('queued steps in containers (launch: { docker }, a real dockerd)', () => {
  it('a queue worker starts each step in a container of its own; outputs pass through Redis; none is left', async () => {
    expectChainInOwnContainers(await run('chain3', inDocker()));
  });

  it('gives the results executeInProcess gives', async () => {
    for (const name of ['simple', 'failing']) await expectSameAsInProcess(await run(name, inDocker()), defs.getJob(name));
  });

  it('docker kill of a step container: the worker reports the exit, and the retry policy reruns the step', async () => {
    await expectKilledContainerRetried((onEvent) => run('killable', inDocker(), { onEvent }));
  });

  it('cancelling the run stops its step container', async () => {
    const controller = new AbortController();
    const r = await run('cancellable', inDocker(), { signal: controller.signal, onEvent: (ev) => ev.type === 'LOG' && controller.abort() });
    expect(r.success).toBe(false);
    // The worker stops the container when the cancel reaches it; the launching process does not wait for that.
    const deadline = Date.now() + 30_000;
    while (containersLabelled(`weft.run=${r.runId}`).length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(containersLabelled(`weft.run=${r.runId}`)).toEqual([]);
  });

  it('kill -9 of the queue worker that launched a step: another worker takes it over in a new container, and none is left', async () => {
    const args = ['--queues', 'takeover', '--stall-interval', '500ms', '--lock', '1s', '--allow-mount', dir];
    const first = await startWorker(args);
    const go = join(dir, 'go-takeover');
    const exec = queueExecutor.configured({ redis: redis.url, queue: 'takeover', healthCheckIntervalSeconds: 0.5, launch: { docker: { image, network: 'host', volumes: [`${ROOT}:${ROOT}:ro`, `${dir}:${dir}:ro`] } } }) as ExecutorDefinition;
    let second: Promise<ChildProcess> | null = null;
    const r = await run('long_step', exec, {
      runConfig: { ops: { waits_for_go: { config: { file: go } } } },
      onEvent: (ev) => {
        if (ev.type !== 'LOG' || second) return;
        first.kill('SIGKILL');
        second = startWorker(args);
        writeFileSync(go, 'go');
      },
    });
    expect(r.success).toBe(true);
    expect(r.allEvents.some((e) => e.type === 'ENGINE_EVENT' && /started again/.test(e.message))).toBe(true);
    expect(containersLabelled(`weft.run=${r.runId}`)).toEqual([]);
  });

  it('an image that does not exist fails the step at once, naming it', async () => {
    const exec = queueExecutor.configured({ redis: redis.url, launch: { docker: { image: 'weft-no-such-image:1', network: 'host' } } }) as ExecutorDefinition;
    const r = await run('simple', exec);
    expect(r.success).toBe(false);
    expect(r.failures[0]?.error.message).toMatch(/image weft-no-such-image:1 does not exist/);
  });
});

describe('queued steps as Kubernetes Jobs (launch: { k8s }, the fake API server)', () => {
  it('a queue worker makes a Job per step; the results are those of executeInProcess; nothing is left', async () => {
    const exec = queueExecutor.configured({ redis: redis.url, healthCheckIntervalSeconds: 0.5, launch: { k8s: { image: K8S_IMAGE } } }) as ExecutorDefinition;
    for (const name of ['simple', 'branching']) {
      const before = fake.requests.filter((q) => q.startsWith('POST')).length;
      const r = await run(name, exec);
      await expectSameAsInProcess(r, defs.getJob(name));
      const ran = defs.getJob(name).steps.filter((s) => r.eventsForNode(s.key).some((e) => e.type === 'STEP_START')).length;
      expect(fake.requests.filter((q) => q.startsWith('POST')).length - before).toBe(ran);
      expect([...fake.jobs.values()].filter((j) => (j['metadata'] as { labels: Record<string, string> }).labels['weft/run'] === r.runId)).toEqual([]);
    }
    expect(fake.livePods()).toEqual([]);
  });
});
