/**
 * The Dask client calls that act on the cluster itself, against real
 * clusters over loopback: run on every worker, replicate, retire workers,
 * and the terminal progress bar.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CancelledError, progress, RunError, type Future, type TaskDef } from '../src/index.ts';
import { executedDuring, startRunaway, twoWorkers, withCluster } from './helpers/util.ts';

const TASKS = new URL('./fixtures/tasks.ts', import.meta.url).href;
const fn = (name: string): string => `${TASKS}#${name}`;

describe('client.run', () => {
  it('calls a function in every worker process and returns each result by worker', async () => {
    await withCluster({ workers: 2 }, async (_cluster, client) => {
      const workers = await client.workers();
      const pids = await client.run<number>(() => process.pid);
      expect(Object.keys(pids).sort()).toEqual(workers.map((w) => w.name).sort());
      for (const w of workers) expect(pids[w.name]).toBe(w.pid);
      // A module function, with arguments, awaited when async.
      const echoed = await client.run<unknown>(fn('echo'), { a: [1, 2] });
      expect(Object.values(echoed)).toEqual([{ a: [1, 2] }, { a: [1, 2] }]);
    });
  }, 60_000);

  it('rejects with a RunError naming the worker and carrying its stack', async () => {
    await withCluster({ workers: 1 }, async (_cluster, client) => {
      const [w] = await client.workers();
      const err = await client.run(() => {
        throw new RangeError('not on this worker');
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RunError);
      expect((err as RunError).worker).toBe(w?.name);
      expect((err as RunError).remoteName).toBe('RangeError');
      expect((err as RunError).message).toContain('not on this worker');
      expect((err as RunError).remoteStack).toContain('RangeError');
    });
  }, 60_000);
});

describe('replicate and retireWorkers', () => {
  it('replicate puts a copy of each result on every worker', async () => {
    await withCluster({ workers: 3 }, async (_cluster, client) => {
      const [a] = await client.workers();
      const fs = client.map(fn('inc'), [1, 2, 3], { workers: [a?.name ?? ''] });
      await Promise.all(fs.map((f) => f.done()));
      await client.replicate(fs);
      const holders = await client.whoHas(fs);
      for (const f of fs) expect(holders[f.key]?.length).toBe(3);
      // Two copies asked: already three, nothing changes.
      await client.replicate(fs, 2);
      expect(Object.values(await client.whoHas(fs)).map((h) => h.length)).toEqual([3, 3, 3]);
      expect(await client.gather(fs)).toEqual([2, 3, 4]);
      // Released, every copy goes.
      for (const f of fs) f.release();
      await expect.poll(async () => (await client.workers()).reduce((s, w) => s + w.stored, 0), { timeout: 10_000 }).toBe(0);
    });
  }, 60_000);

  it('retireWorkers moves results only the retiring worker holds, then it leaves; nothing is recomputed', async () => {
    await withCluster({ workers: 2 }, async (_cluster, client) => {
      const [a, b] = await twoWorkers(client);
      const fs: Future[] = client.map(fn('bytes'), [100_000, 200_000], { workers: [a.name] });
      await Promise.all(fs.map((f) => f.done()));
      const before = (await client.workerMetrics())[b.address];
      const { retired, failed } = await client.retireWorkers([a.name]);
      expect(failed).toEqual([]);
      expect(retired).toEqual([a.name]);
      await expect.poll(async () => (await client.workers()).map((w) => w.name), { timeout: 10_000 }).toEqual([b.name]);
      // The results are on b now, read from there: b fetched them before a left.
      expect(Object.values(await client.whoHas(fs))).toEqual([[b.address], [b.address]]);
      const values = (await client.gather(fs)) as Uint8Array[];
      expect(values.map((v) => v.length)).toEqual([100_000, 200_000]);
      const after = (await client.workerMetrics())[b.address];
      expect((after?.bytesFetched ?? 0) - (before?.bytesFetched ?? 0)).toBeGreaterThanOrEqual(300_000);
      expect(after?.tasksExecuted).toBe(before?.tasksExecuted);
      // New work runs on the one left.
      expect(await client.submit(fn('inc'), 1)).toBe(2);
      // An unknown name fails, and retiring the last worker is refused.
      expect((await client.retireWorkers(['nobody'])).failed).toEqual(['nobody: no such worker']);
      const last = await client.retireWorkers([b.name]);
      expect(last.retired).toEqual([]);
      expect(last.failed[0]).toContain('no other worker');
      expect((await client.workers()).length).toBe(1);
    });
  }, 60_000);
});

describe('gather from a stalled worker', () => {
  it('fails over to another holder within the gather timeout', async () => {
    await withCluster({ workers: 2 }, async (cluster) => {
      const client = await cluster.client({ gatherTimeoutMs: 1500 });
      try {
        const [a] = await client.workers();
        if (!a) throw new Error('no worker');
        const f = client.submitWith({ workers: [a.name] }, fn('inc'), 1);
        await f.done();
        await client.replicate([f]);
        process.kill(a.pid, 'SIGSTOP');
        try {
          const start = Date.now();
          expect(await client.gather([f])).toEqual([2]);
          expect(Date.now() - start).toBeLessThan(10_000);
        } finally {
          process.kill(a.pid, 'SIGCONT');
        }
      } finally {
        await client.close();
      }
    });
  }, 60_000);
});

describe('restart', () => {
  it.each([
    ['under nannies: new worker processes', true],
    ['without: fresh threads in the same processes', false],
  ])('drops every result, cancels the futures and ends a runaway task (%s); work then runs on every worker', async (_what, nanny) => {
    await withCluster({ workers: 2, nanny }, async (_cluster, client) => {
      const pidsBefore = (await client.workers()).map((w) => w.pid).sort();
      const held = client.map(fn('inc'), [1, 2, 3]);
      await Promise.all(held.map((f) => f.done()));
      const [a] = await client.workers();
      const { runaway } = await startRunaway(client, a?.name ?? '');
      await client.restart();
      for (const f of [...held, runaway]) {
        expect(f.status).toBe('cancelled');
        await expect(f.result()).rejects.toBeInstanceOf(CancelledError);
      }
      expect((await client.workers()).map((w) => [w.stored, w.processing])).toEqual([
        [0, 0],
        [0, 0],
      ]);
      const pidsAfter = (await client.workers()).map((w) => w.pid).sort();
      if (nanny) expect(pidsAfter.some((p) => pidsBefore.includes(p))).toBe(false);
      else expect(pidsAfter).toEqual(pidsBefore);
      // Both workers run tasks again (a: its one thread is no longer spinning), the same keys included.
      const g = new Map<string, TaskDef>();
      for (let i = 0; i < 40; i++) g.set(`after-restart-${i}`, { fn: fn('busy'), args: [5] });
      const executed = await executedDuring(client, async () => {
        expect(await client.gather(client.map(fn('inc'), [1, 2, 3]))).toEqual([2, 3, 4]);
        await client.get(g, [...g.keys()]);
      });
      for (const n of executed) expect(n).toBeGreaterThan(0);
    });
  }, 60_000);
});

describe('progress', () => {
  const captured = (tty: boolean): { stream: NodeJS.WriteStream; text: () => string } => {
    const s = new PassThrough();
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString()));
    return { stream: Object.assign(s, { isTTY: tty }) as unknown as NodeJS.WriteStream, text: () => text };
  };

  it('prints lines off a terminal, and counts finished and failed tasks', async () => {
    await withCluster({ workers: 1 }, async (_cluster, client) => {
      const g = new Map<string, TaskDef>();
      for (let i = 0; i < 20; i++) g.set(`p-${i}`, i < 18 ? { fn: fn('busy'), args: [5] } : { fn: fn('fail'), args: ['no'] });
      const fs = Object.values(await client.compute(g, { keys: [...g.keys()] }));
      const out = captured(false);
      const result = await progress(fs, { stream: out.stream, label: 'steps' });
      expect(result.finished).toBe(18);
      expect(result.failed).toBe(2);
      expect(out.text()).toContain('20/20 steps done (2 failed)');
      expect(out.text()).not.toContain('\r');
    });
  }, 60_000);

  it('draws a bar on a terminal', async () => {
    await withCluster({ workers: 1 }, async (_cluster, client) => {
      const fs = client.map(fn('busy'), [50, 50, 50, 50]);
      const out = captured(true);
      await progress(fs, { stream: out.stream });
      expect(out.text()).toContain('\r[');
      expect(out.text()).toContain('4/4 tasks');
      expect(out.text().endsWith('\n')).toBe(true);
    });
  }, 60_000);
});
