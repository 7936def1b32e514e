/**
 * The Kubernetes Job executor against a fake API server (test/helpers/
 * fake-k8s.ts): no API server can run on these machines. The fake answers
 * the calls weft makes with the real API's shapes and status codes, and runs
 * each Job's pod as a local process that really executes `weft step` (this
 * checkout's compiled bin), which connects back to the run's coordinator.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { k8sJobExecutor, type ExecutorDefinition, type JobDefinition } from '../src/index.ts';
import { executeJob } from '../src/jobs/run.ts';
import { k8sJobName, labelValue } from '../src/jobs/handlers/k8s.ts';
import defs from './fixtures/step-jobs.ts';
import { startFakeK8s, type FakeK8s } from './helpers/fake-k8s.ts';
import { ROOT } from './helpers/docker-image.ts';
import { expectSameAsInProcess } from './helpers/in-process.ts';
import { expectMendedFromFailure } from './helpers/reexecution.ts';
import { cancelMidFanOut, expectDynamicLikeInProcess } from './helpers/dynamic.ts';
import { Instance } from '../src/runs/instance.ts';
import { reexecute } from '../src/runs/reexecute.ts';

const MODULE = new URL('./fixtures/step-jobs.ts', import.meta.url).href;
const IMAGE = 'registry.test/weft-steps:1';
const dir = mkdtempSync(join(tmpdir(), 'weft-k8s-'));
let fake: FakeK8s;
let k8s: (extra?: Record<string, unknown>) => ExecutorDefinition;

beforeAll(async () => {
  fake = await startFakeK8s({ images: [IMAGE], weftBin: join(ROOT, 'bin/weft.js'), dir });
  k8s = (extra = {}) => k8sJobExecutor.configured({ image: IMAGE, kubeconfig: fake.kubeconfig, healthCheckIntervalSeconds: 0.25, ...extra }) as ExecutorDefinition;
});
afterAll(async () => {
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});

function run(name: string, exec: ExecutorDefinition, opts: Parameters<typeof executeJob>[3] = {}): ReturnType<typeof executeJob> {
  return executeJob(defs.getJob(name), exec, { module: MODULE, jobName: name }, opts);
}

/** Nothing of a run is left: no Job, no pod process. */
function nothingLeft(runId: string): void {
  expect([...fake.jobs.values()].filter((j) => (j['metadata'] as { labels: Record<string, string> }).labels['weft/run'] === runId)).toEqual([]);
  expect(fake.livePods()).toEqual([]);
}

describe('the k8s Job executor (a fake Kubernetes API server)', () => {
  it('runs a job with dynamic outputs: a Job per mapped copy, named and labelled as a real server takes them, the results executeInProcess gives', async () => {
    for (const name of ['mapped', 'nested']) {
      const mine = await expectDynamicLikeInProcess(k8s(), name);
      nothingLeft(mine.runId);
    }
    // Copies' step keys hold brackets: their Jobs' names and step labels are made valid (the fake refuses what a real server does).
    expect(fake.requests.filter((r) => r.startsWith('POST')).length).toBeGreaterThan(0);
  });

  it('a run with dynamic outputs cancelled mid-fan-out leaves no Job and no pod', async () => {
    const c = await cancelMidFanOut(k8s());
    nothingLeft(c.runId);
  });

  it('gives the results executeInProcess gives, one Job per step, and leaves nothing', async () => {
    for (const name of ['simple', 'branching', 'failing', 'logging']) {
      const before = fake.requests.filter((r) => r.startsWith('POST')).length;
      const job: JobDefinition = defs.getJob(name);
      const mine = await run(name, k8s());
      await expectSameAsInProcess(mine, job);
      const ran = job.steps.filter((s) => mine.eventsForNode(s.key).some((e) => e.type === 'STEP_START')).length;
      // A Job per step that ran; one started ahead and stopped unseen (failing's add_one) adds one.
      expect(fake.requests.filter((r) => r.startsWith('POST')).length - before).toBeGreaterThanOrEqual(ran);
      nothingLeft(mine.runId);
    }
  });

  it('makes Jobs with backoffLimit 0, DNS-1123 names of at most 63 characters, and run and step labels', async () => {
    const seen: Record<string, unknown>[] = [];
    const r = await run('simple', k8s({ labels: { team: 'data' } }), {
      onEvent: (ev) => {
        if (ev.type === 'STEP_START') seen.push(...fake.jobs.values());
      },
    });
    expect(r.success).toBe(true);
    expect(seen.length).toBeGreaterThan(0);
    for (const j of seen) {
      const md = j['metadata'] as { name: string; labels: Record<string, string> };
      expect(md.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      expect(md.name.length).toBeLessThanOrEqual(63);
      expect(md.labels['weft/run']).toBe(r.runId);
      expect(md.labels['team']).toBe('data');
      expect((j['spec'] as { backoffLimit: number }).backoffLimit).toBe(0);
    }
    const long = 'a'.repeat(200);
    expect(k8sJobName('run', long, 0).length).toBeLessThanOrEqual(63);
    expect(k8sJobName('run', 'Step/Ä_1', 0)).toMatch(/^weft-step-1-[0-9a-f]{12}$/);
    expect(k8sJobName('run', 'x', 0)).not.toBe(k8sJobName('run', 'x', 1));
    expect(labelValue(long)).toMatch(/^a{50}-[0-9a-f]{10}$/);
  });

  it.each([1, 2])('a delayed retry below steps started ahead goes on with %i slot(s)', async (n) => {
    const mine = await run('retry_fan', k8s({ maxConcurrent: n }));
    await expectSameAsInProcess(mine, defs.getJob('retry_fan'));
    nothingLeft(mine.runId);
  });

  it('re-executes from failure: one Job per step run again, the rest load from the first run', async () => {
    const instance = await Instance.open({ home: join(dir, 'home') });
    try {
      await expectMendedFromFailure(instance, join(dir, 'flag'), (runConfig) => run('mend', k8s(), { instance, runConfig }), (runId) => reexecute(instance, runId, { fromFailure: true, executorDef: k8s() }));
    } finally {
      await instance.close();
    }
  });

  it('streams a LOG while the step is still running', async () => {
    const go = join(dir, 'go');
    const r = await run('long_step', k8s(), { runConfig: { ops: { waits_for_go: { config: { file: go } } } }, onEvent: (ev) => ev.type === 'LOG' && writeFileSync(go, 'go') });
    expect(r.success).toBe(true);
    expect(r.eventsForNode('waits_for_go').map((e) => e.type)).toEqual(['STEP_START', 'LOG', 'STEP_OUTPUT', 'STEP_SUCCESS']);
  });

  it('fails a step whose pod cannot pull its image, with the reason', async () => {
    const r = await run('simple', k8s({ image: 'registry.test/no-such-image:1' }));
    expect(r.success).toBe(false);
    expect(r.failures[0]?.error.message).toMatch(/cannot start: ErrImagePull/);
    nothingLeft(r.runId);
  });

  it('fails a step whose container died without reporting, with its exit code and last output', async () => {
    const r = await run('killed', k8s());
    expect(r.success).toBe(false);
    expect(r.failures.map((f) => f.stepKey)).toEqual(['dies']);
    expect(r.failures[0]?.error.message).toMatch(/container exited with code 137/);
    expect(r.outputForNode('one')).toBe(1);
    nothingLeft(r.runId);
  });

  it('a deleted Job fails its step, and the retry policy reruns it in a new Job', async () => {
    const r = await run('killable', k8s(), {
      onEvent: (ev) => {
        if (ev.type !== 'LOG') return;
        // kubectl delete job --grace-period=0
        for (const [key, j] of fake.jobs) if ((j['metadata'] as { labels: Record<string, string> }).labels['weft/step'] === 'killable') void fake.request('DELETE', `/apis/batch/v1/namespaces/default/jobs/${key.split('/')[1]}?gracePeriodSeconds=0&propagationPolicy=Background`);
      },
    });
    expect(r.success).toBe(true);
    const retry = r.eventsForNode('killable').find((e) => e.type === 'STEP_UP_FOR_RETRY');
    expect(retry?.error?.message).toMatch(/Kubernetes Job weft-killable-[0-9a-f]{12} of step killable was deleted/);
    expect((r.outputForNode('killable') as { attempt: number }).attempt).toBe(1);
    nothingLeft(r.runId);
  });

  it('a memory limit gives OOMKilled', async () => {
    const r = await run('hog', k8s({ resources: { limits: { memory: '128Mi' } } }));
    expect(r.success).toBe(false);
    expect(r.failures[0]?.error.message).toMatch(/exited with code 137 \(OOMKilled/);
  });

  it('applies config in order: executor < op tag weft/k8s < perStepK8sConfig', async () => {
    fake.configMaps.set('default/weft-test', { WEFT_TEST_VAR: 'from a ConfigMap' });
    const jobs: Record<string, Record<string, unknown>> = {};
    const r = await run('env_k8s', k8s({ envConfigMaps: ['weft-test'], perStepK8sConfig: { env_both: { env: ['WEFT_TEST_VAR=from perStepK8sConfig'], labels: { team: 'per-step' } } } }), {
      onEvent: (ev) => {
        if (ev.type !== 'STEP_START') return;
        for (const j of fake.jobs.values()) jobs[(j['metadata'] as { annotations: Record<string, string> }).annotations['weft/step-key'] as string] = j;
      },
    });
    expect(r.success).toBe(true);
    expect(r.outputForNode('env_plain')).toBe('from a ConfigMap');
    expect(r.outputForNode('env_tagged')).toBe('from the op tag');
    expect(r.outputForNode('env_both')).toBe('from perStepK8sConfig');
    const team = (k: string): string | undefined => ((jobs[k]?.['metadata'] as { labels: Record<string, string> } | undefined)?.labels ?? {})['team'];
    expect([team('env_plain'), team('env_tagged'), team('env_both')]).toEqual([undefined, 'tag', 'per-step']);
  });

  it('cancelling the run deletes its Jobs and stops their pods', async () => {
    const controller = new AbortController();
    let logs = 0;
    const r = await run('cancellable', k8s(), {
      signal: controller.signal,
      onEvent: (ev) => {
        if (ev.type === 'LOG' && ++logs === 2) controller.abort();
      },
    });
    expect(r.canceled).toBe(true);
    expect(r.failures.map((f) => f.error.remoteName)).toEqual(['CancelledError', 'CancelledError']);
    nothingLeft(r.runId);
  });

  it('answers as the API server does: a Status for what it does not have', async () => {
    const missing = await fake.request('GET', '/apis/batch/v1/namespaces/default/jobs/no-such-job');
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ kind: 'Status', reason: 'NotFound', code: 404 });
  });
});
