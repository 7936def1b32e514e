/**
 * The queue executor on a real Redis (Debian's redis-server, started here)
 * with real `weft queue-worker` processes: the launching process and the
 * workers meet only at Redis.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueExecutor, type ExecutorDefinition, type JobDefinition } from '../src/index.ts';
import { executeJob } from '../src/jobs/run.ts';
import { WEFT_BIN } from '../src/cluster/local-cluster.ts';
import defs from './fixtures/step-jobs.ts';
import { startRedis, type TestRedis } from './helpers/redis.ts';
import { ROOT } from './helpers/docker-image.ts';
import { alive, waitFor } from './helpers/util.ts';
import { expectSameAsInProcess } from './helpers/in-process.ts';
import { expectMendedFromFailure } from './helpers/reexecution.ts';
import { cancelMidFanOut, expectDynamicLikeInProcess } from './helpers/dynamic.ts';
import { Instance } from '../src/runs/instance.ts';
import { reexecute } from '../src/runs/reexecute.ts';

const MODULE = new URL('./fixtures/step-jobs.ts', import.meta.url).href;
const dir = mkdtempSync(join(tmpdir(), 'weft-queue-'));
let redis: TestRedis;
const workers: ChildProcess[] = [];

/** Starts `weft queue-worker` and resolves once it takes steps. */
async function startWorker(args: string[] = []): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [WEFT_BIN, 'queue-worker', '--redis', redis.url, '--stall-interval', '500ms', '--lock', '1s', ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, WEFT_LOG_LEVEL: 'warn' } });
  workers.push(proc);
  const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
  for await (const line of lines) if (line.startsWith('{')) break;
  return proc;
}

async function stopWorker(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = once(p, 'exit');
  p.kill('SIGTERM');
  await exited;
}

let exec: ExecutorDefinition;
beforeAll(async () => {
  redis = await startRedis();
  exec = queueExecutor.configured({ redis: redis.url, healthCheckIntervalSeconds: 0.5 }) as ExecutorDefinition;
  await Promise.all([startWorker(), startWorker()]);
}, 60_000);
afterAll(async () => {
  await Promise.all(workers.map(stopWorker));
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function queueStatusOf(name: string): Promise<{ waiting: number; active: number } | undefined> {
  const { queueStatus } = await import('../src/jobs/queue/status.ts');
  return (await queueStatus(redis.url, 'weft', [name])).queues[0];
}

function run(name: string, e: ExecutorDefinition = exec, opts: Parameters<typeof executeJob>[3] = {}): ReturnType<typeof executeJob> {
  return executeJob(defs.getJob(name), e, { module: MODULE, jobName: name }, opts);
}

describe('the queue executor (BullMQ on a real Redis, weft queue-worker processes)', () => {
  it('runs a job with dynamic outputs on its workers: copies and the collecting step read their inputs as the launcher says', async () => {
    await expectDynamicLikeInProcess(exec, 'mapped');
    await expectDynamicLikeInProcess(exec, 'nested');
    await expectDynamicLikeInProcess(exec, 'two_outputs', 'both');
  });

  it('a run with dynamic outputs cancelled mid-fan-out leaves no queued or running step', async () => {
    // The fan-out op and both copies run at once: a worker each.
    const extra = await startWorker();
    await cancelMidFanOut(exec);
    await stopWorker(extra);
    await waitFor(async () => {
      const s = await queueStatusOf('weft');
      return s?.waiting === 0 && s.active === 0;
    }, 10_000, 'queue weft empty');
  });

  it('gives the results executeInProcess gives, each step on a queue worker', async () => {
    const workerPids = new Set(workers.map((w) => w.pid));
    for (const name of ['simple', 'branching', 'failing', 'logging']) {
      const job: JobDefinition = defs.getJob(name);
      const mine = await run(name);
      await expectSameAsInProcess(mine, job);
      for (const s of job.steps) {
        const pid = mine.eventsForNode(s.key).find((e) => e.type === 'STEP_START')?.pid;
        if (pid !== undefined) expect(workerPids.has(pid)).toBe(true);
      }
    }
  });

  it('stores each output under its run in Redis, with an expiry, for the steps that take it', async () => {
    const r = await run('simple');
    expect(r.success).toBe(true);
    const { connectRedis } = await import('../src/jobs/queue/redis.ts');
    const c = await connectRedis(redis.url);
    try {
      const keys = (await c.keys(`weft:run:${r.runId}:out:*`)).sort();
      expect(keys).toEqual(['add', 'add_one', 'add_one_2', 'one', 'one_2'].map((s) => `weft:run:${r.runId}:out:${s}:result`));
      for (const k of keys) {
        const ttl = await c.ttl(k);
        expect(ttl).toBeGreaterThan(0);
        expect(ttl).toBeLessThanOrEqual(24 * 3600);
      }
    } finally {
      c.disconnect();
    }
  });

  it("passes the run's job inputs and constants through Redis", async () => {
    const r = await run('from_graph', exec, { inputValues: { x: 40 } });
    expect(r.success).toBe(true);
    expect(r.outputForNode('add_one_2')).toBe(42);
  });

  it.each([1, 2])('a delayed retry goes on with %i slot(s); steps are not started ahead (refused, naming the path)', async (n) => {
    await expectSameAsInProcess(await run('retry_fan', exec.configured({ maxConcurrent: n }) as ExecutorDefinition), defs.getJob('retry_fan'));
    await expect(run('retry_fan', exec.configured({ startAhead: true }) as ExecutorDefinition)).rejects.toThrow(/startAhead: the queue executor queues each step once it is ready/);
  });

  it('re-executes from failure: the loaded outputs reach the workers through Redis', async () => {
    const instance = await Instance.open({ home: join(dir, 'home') });
    try {
      await expectMendedFromFailure(instance, join(dir, 'flag'), (runConfig) => run('mend', exec, { instance, runConfig }), (runId) => reexecute(instance, runId, { fromFailure: true, executorDef: exec }));
    } finally {
      await instance.close();
    }
  });

  it('streams a LOG while the step is still running', async () => {
    const go = join(dir, 'go');
    const r = await run('long_step', exec, { runConfig: { ops: { waits_for_go: { config: { file: go } } } }, onEvent: (ev) => ev.type === 'LOG' && writeFileSync(go, 'go') });
    expect(r.success).toBe(true);
    expect(r.eventsForNode('waits_for_go').map((e) => e.type)).toEqual(['STEP_START', 'LOG', 'STEP_OUTPUT', 'STEP_SUCCESS']);
  });

  it('kill -9 of a queue worker in the middle of a step: another worker takes it and the run succeeds', async () => {
    const extra = await startWorker();
    const go = join(dir, 'go-kill');
    let killed = 0;
    const r = await run('long_step', exec, {
      runConfig: { ops: { waits_for_go: { config: { file: go } } } },
      onEvent: (ev) => {
        if (ev.type === 'LOG' && ev.pid && !killed) {
          killed = ev.pid;
          process.kill(ev.pid, 'SIGKILL');
          // The step runs again elsewhere; let it end there.
          writeFileSync(go, 'go');
        }
      },
    });
    expect(r.success).toBe(true);
    expect(alive(killed)).toBe(false);
    expect(r.allEvents.some((e) => e.type === 'ENGINE_EVENT' && /started again/.test(e.message))).toBe(true);
    await stopWorker(extra);
  });

  it('fails at once with a clear error for a Redis nobody listens on', async () => {
    const t0 = Date.now();
    const r = await run('simple', queueExecutor.configured({ redis: 'redis://127.0.0.1:1/0' }) as ExecutorDefinition);
    expect(r.success).toBe(false);
    expect(r.allEvents.at(-1)?.message).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1\/0/);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('fails a malformed job placed on a weft queue with the reason, and the workers go on', async () => {
    const { Queue } = await import('bullmq');
    const q = new Queue('weft', { connection: { url: redis.url }, prefix: 'weft' });
    try {
      const job = await q.add('step', { v: 1, spec: { runId: 'x' } });
      await waitFor(async () => (await job.getState()) === 'failed', 20_000, 'the malformed job failed');
      const failed = await q.getJob(job.id as string);
      expect(failed?.failedReason).toMatch(/is not a weft step: spec\./);
      const r = await run('simple');
      expect(r.success).toBe(true);
    } finally {
      await q.close();
    }
  });

  it('runs no code from outside its code root, and refuses launch options that grant more than the image, naming them', async () => {
    const { Queue } = await import('bullmq');
    const q = new Queue('weft', { connection: { url: redis.url }, prefix: 'weft' });
    const marker = join(dir, 'imported');
    const outside = join(dir, 'outside.mjs');
    writeFileSync(outside, `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(marker)}, 'imported');\n`);
    try {
      const spec = { runId: 'r-outside', module: pathToFileURL(outside).href, jobName: 'j', stepKey: 's', attempt: 0, retries: false, runConfig: {} };
      for (const module of [spec.module, '../../etc/passwd']) {
        const job = await q.add('step', { v: 1, spec: { ...spec, module } });
        await waitFor(async () => (await job.getState()) === 'failed', 20_000, 'the job to fail');
        expect((await q.getJob(job.id as string))?.failedReason).toMatch(/^step s \(attempt 0\) of run r-outside was refused: its code location .* (is outside this worker's code root|does not exist on this worker)/);
      }
      expect(existsSync(marker)).toBe(false);
      // A run whose launch asks for a privileged container fails with the field named; nothing is started.
      const privileged = exec.configured({ launch: { docker: { image: 'never-started', containerOptions: { HostConfig: { Privileged: true } } } } }) as ExecutorDefinition;
      const r = await run('simple', privileged);
      expect(r.success).toBe(false);
      expect(r.failures[0]?.error.message).toMatch(/was refused: launch\.docker\.containerOptions\.HostConfig\.Privileged: this worker does not take that from a job \(start it with --trust-launch-options/);
    } finally {
      await q.close();
    }
  });

  it('takes waiting steps in priority order across runs (job tag weft/run-priority)', async () => {
    const low = run('prio_low');
    const high = run('prio_high');
    // Both runs' steps wait on queue prio, which no worker serves yet.
    await waitFor(async () => (await queueStatusOf('prio'))?.waiting === 6, 20_000, '6 waiting steps');
    const worker = await startWorker(['--queues', 'prio', '--concurrency', '1']);
    const [l, h] = await Promise.all([low, high]);
    expect(l.success && h.success).toBe(true);
    const starts = (r: typeof l): number[] => r.allEvents.filter((e) => e.type === 'STEP_START').map((e) => e.timestamp);
    expect(Math.max(...starts(h))).toBeLessThanOrEqual(Math.min(...starts(l)));
    await stopWorker(worker);
  });

  it('a step that kills every worker that takes it fails after a bounded number of takes', async () => {
    // Three workers: the step may stall once (--max-stalls 1), so it kills two; the third sees it stalled again and fails it.
    const killer = ['--queues', 'killer', '--max-stalls', '1'];
    const killers = await Promise.all([startWorker(killer), startWorker(killer), startWorker(killer)]);
    const r = await run('kills_workers');
    expect(r.success).toBe(false);
    expect(r.failures[0]?.error.message).toMatch(/a queue worker failed step kills_its_worker: .*stalled more than allowable limit/);
    expect(killers.filter((k) => k.signalCode === 'SIGKILL')).toHaveLength(2);
    await Promise.all(killers.map(stopWorker));
  });

  it('cancelling a run removes its waiting steps and stops its running one; another run goes on', async () => {
    const worker = await startWorker(['--queues', 'slow', '--concurrency', '1']);
    const controller = new AbortController();
    const cancelled = run('cancellable_queued', exec, {
      signal: controller.signal,
      onEvent: (ev) => {
        if (ev.type === 'LOG') controller.abort();
      },
    });
    const other = run('simple');
    const [c, o] = await Promise.all([cancelled, other]);
    expect(c.canceled).toBe(true);
    expect(o.success).toBe(true);
    // The running step saw its signal; the waiting one never ran and is off the queue.
    expect(c.allEvents.filter((e) => e.type === 'STEP_START')).toHaveLength(1);
    await waitFor(async () => {
      const s = await queueStatusOf('slow');
      return s?.waiting === 0 && s.active === 0;
    }, 10_000, 'queue slow empty');
    await stopWorker(worker);
  });

  it('a step cancelled just as a worker takes it, before that worker hears of cancels, is not started', async () => {
    const worker = await startWorker(['--queues', 'slow', '--concurrency', '1']);
    const runId = globalThis.crypto.randomUUID();
    // What a cancel leaves when its remove lost the race to a worker (handlers/queue.ts): the message may come too early, the key stays.
    const { connectRedis } = await import('../src/jobs/queue/redis.ts');
    const r = await connectRedis(redis.url);
    try {
      for (const step of ['waits_on_slow', 'waits_on_slow_2']) await r.set(`weft:run:${runId}:cancel:0|${step}`, '1', 'EX', 60);
    } finally {
      r.disconnect();
    }
    const started = Date.now();
    const res = await run('cancellable_queued', exec, { runId });
    // Each step would otherwise wait 60 s for a cancel.
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(res.allEvents.filter((e) => e.type === 'STEP_START')).toEqual([]);
    await stopWorker(worker);
  });

  it('the launching process killed with -9: its queued step is dropped, not run, and its keys expire', async () => {
    const marker = join(dir, 'orphan-ran');
    const cfg = join(dir, 'orphan.json');
    writeFileSync(cfg, JSON.stringify({ ops: { marks: { config: { file: marker } } } }));
    const launcher = spawn(process.execPath, [WEFT_BIN, 'run', join(ROOT, 'test/fixtures/step-jobs.ts'), '--job', 'orphaned', '--config', cfg, '--json'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, WEFT_TEST_REDIS: redis.url } });
    let runId = '';
    const lines = createInterface({ input: launcher.stdout as NodeJS.ReadableStream });
    lines.on('line', (l) => (runId ||= (JSON.parse(l) as { runId: string }).runId));
    await waitFor(async () => (await queueStatusOf('orphan'))?.waiting === 1, 20_000, 'the step waiting on queue orphan');
    launcher.kill('SIGKILL');
    await once(launcher, 'exit');
    // Past the 2 s heartbeat, a worker takes the step and drops it.
    await new Promise((r) => setTimeout(r, 2500));
    const { Queue } = await import('bullmq');
    const q = new Queue('orphan', { connection: { url: redis.url }, prefix: 'weft' });
    try {
      const worker = await startWorker(['--queues', 'orphan']);
      await waitFor(async () => (await q.getJobCounts('failed'))['failed'] === 1, 10_000, 'the step dropped');
      const [failed] = await q.getFailed();
      expect(failed?.failedReason).toMatch(/was dropped: the process that launched the run is gone/);
      expect(existsSync(marker)).toBe(false);
      await stopWorker(worker);
    } finally {
      await q.close();
    }
    // What the run stored in Redis expires.
    const { connectRedis } = await import('../src/jobs/queue/redis.ts');
    const r = await connectRedis(redis.url);
    try {
      // Its heartbeat is gone; anything else it left expires.
      expect(await r.exists(`weft:run:${runId}:alive`)).toBe(0);
      for (const k of await r.keys(`weft:run:${runId}:*`)) expect(await r.ttl(k)).toBeGreaterThan(0);
    } finally {
      r.disconnect();
    }
  });

  it('Redis restarted in the middle of a run: the run fails with a clear reason, it does not hang', async () => {
    const go = join(dir, 'go-restart');
    let restarted: Promise<void> | null = null;
    const r = await run('long_step', exec, {
      runConfig: { ops: { waits_for_go: { config: { file: go } } } },
      onEvent: (ev) => {
        if (ev.type === 'LOG' && !restarted) {
          restarted = (async () => {
            await redis.stop();
            redis = await startRedis(redis.port);
          })();
        }
      },
    });
    await restarted;
    expect(r.success).toBe(false);
    expect(r.failures[0]?.error.message).toMatch(/is gone from queue weft \(Redis restarted without its data|cannot reach Redis/);
  });

  it('fails an output larger than the path takes, naming the limit', async () => {
    const r = await run('too_big');
    expect(r.success).toBe(false);
    expect(r.failures[0]?.error.message).toMatch(/output result of step too_big is \d+ bytes as msgpack; the queue executor takes outputs of at most 67108864 bytes/);
  });

  it('SIGTERM to a queue worker: it finishes the step it runs, then exits and leaves nothing behind', async () => {
    const worker = await startWorker(['--queues', 'drain']);
    const go = join(dir, 'go-drain');
    const stopping: { exit: Promise<unknown[]> | null } = { exit: null };
    const r = await run('drains', exec, {
      runConfig: { ops: { waits_on_drain: { config: { file: go } } } },
      onEvent: (ev) => {
        if (ev.type !== 'LOG' || stopping.exit) return;
        stopping.exit = once(worker, 'exit');
        worker.kill('SIGTERM');
        // The worker is stopping now; the step it runs still ends.
        setTimeout(() => writeFileSync(go, 'go'), 300);
      },
    });
    expect(r.success).toBe(true);
    expect(r.outputForNode('waits_on_drain')).toBe('finished');
    const [code] = (await stopping.exit) ?? [];
    expect(code).toBe(0);
    expect(alive(worker.pid as number)).toBe(false);
  });

  it('says when no worker serves a queue its steps wait on; a worker started then takes them and logs each step at info', async () => {
    let lonely: ChildProcess | null = null;
    const logged: string[] = [];
    const said: { at: number; message: string }[] = [];
    const started = Date.now();
    const r = await run('simple', exec.configured({ queue: 'lonely' }) as ExecutorDefinition, {
      onEvent: (ev) => {
        if (ev.type !== 'ENGINE_EVENT' || !/no queue worker takes steps from queue lonely/.test(ev.message)) return;
        said.push({ at: Date.now() - started, message: ev.message });
        lonely = spawn(process.execPath, [WEFT_BIN, 'queue-worker', '--redis', redis.url, '--queues', 'lonely', '--name', 'lonely-one', '--log-level', 'info'], { stdio: ['ignore', 'ignore', 'pipe'] });
        workers.push(lonely);
        createInterface({ input: lonely.stderr as NodeJS.ReadableStream }).on('line', (l) => logged.push(l));
      },
    });
    expect(r.success).toBe(true);
    expect(said).toHaveLength(1);
    expect(said[0]?.at).toBeGreaterThanOrEqual(2500);
    expect(said[0]?.message).toMatch(/: [12] step\(s\) of this run wait\. Start one: weft queue-worker --redis URL --queues lonely$/);
    // Queue status names the worker as it was named.
    const status = await new Promise<string>((resolve) => {
      const p = spawn(process.execPath, [WEFT_BIN, 'queue', 'status', '--redis', redis.url, '--queues', 'lonely'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      p.stdout.on('data', (b: Buffer) => (text += b.toString()));
      p.on('exit', () => resolve(text));
    });
    expect(status).toMatch(/^lonely\s+waiting\s+0\s+active\s+0\s+delayed\s+0\s+workers: lonely-one$/m);
    await stopWorker(lonely as unknown as ChildProcess);
    const lines = logged.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; msg: string; step?: string; run?: string });
    for (const step of ['one', 'one_2', 'add_one', 'add_one_2', 'add']) {
      expect(lines.find((l) => l.msg === `step ${step} started`)).toMatchObject({ level: 30, run: r.runId, step });
      expect(lines.find((l) => l.msg.startsWith(`step ${step} succeeded in `))).toMatchObject({ level: 30, step });
    }
  });

  it('weft queue status shows the queues and their workers', async () => {
    const out = await new Promise<string>((resolve) => {
      const p = spawn(process.execPath, [WEFT_BIN, 'queue', 'status', '--redis', redis.url, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      p.stdout.on('data', (b: Buffer) => (text += b.toString()));
      p.on('exit', () => resolve(text));
    });
    const status = JSON.parse(out) as { queues: { name: string; waiting: number; active: number; workers: string[] }[] };
    const weft = status.queues.find((q) => q.name === 'weft');
    // One worker may have been killed by the kill -9 test.
    const live = workers.filter((w) => w.exitCode === null && w.signalCode === null).length;
    expect(live).toBeGreaterThanOrEqual(1);
    expect(weft?.workers.length).toBe(live);
    for (const w of weft?.workers ?? []) expect(w).not.toMatch(/:w:/);
    expect(weft?.waiting).toBe(0);
  });
});
