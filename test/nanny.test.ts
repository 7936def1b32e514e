/**
 * The nanny, with real processes and real signals: a worker killed with
 * kill -9 is back within seconds and the cluster keeps its size; the nanny
 * killed with kill -9 takes its worker with it (no orphan).
 */
import { describe, expect, it } from 'vitest';
import { alive, waitFor, withCluster } from './helpers/util.ts';

const TASKS = new URL('./fixtures/tasks.ts', import.meta.url).href;

describe('nanny', () => {
  it('a worker killed with -9 is started again by its nanny, under the same name, and work runs on it', async () => {
    await withCluster({ workers: 2 }, async (cluster, client) => {
      const before = await client.workers();
      const victim = before.find((w) => w.name === 'local-1');
      if (!victim) throw new Error('no local-1');
      process.kill(victim.pid, 'SIGKILL');
      await waitFor(async () => (await client.workers()).some((w) => w.name === 'local-1' && w.pid !== victim.pid), 15_000, 'local-1 to come back');
      expect(alive(victim.pid)).toBe(false);
      const after = await client.workers();
      expect(after.length).toBe(2);
      // LocalCluster follows: its pid for local-1 is the new worker's.
      await waitFor(() => cluster.workers[1]?.pid === after.find((w) => w.name === 'local-1')?.pid, 5_000, 'LocalCluster to see the new worker');
      const back = after.find((w) => w.name === 'local-1');
      const results = await client.gather(client.map(`${TASKS}#where`, [1, 2, 3, 4], { workers: ['local-1'] }));
      expect(results.every((r) => (r as { pid: number }).pid === back?.pid)).toBe(true);
    });
  }, 60_000);

  it("a worker runs with glibc's memory settings and huge pages, added to the glibc tunables it was given", async () => {
    const before = process.env['GLIBC_TUNABLES'];
    process.env['GLIBC_TUNABLES'] = 'glibc.malloc.arena_max=2';
    try {
      await withCluster({ workers: 1 }, async (_cluster, client) => {
        const [w] = await client.workers();
        if (!w) throw new Error('no worker');
        // Asked of the worker: glibc rewrites GLIBC_TUNABLES in /proc/PID/environ.
        const env = await client.submit(`${TASKS}#envOf`, 'GLIBC_TUNABLES', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_');
        expect(env).toEqual({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1', MALLOC_MMAP_THRESHOLD_: '4194304', MALLOC_TRIM_THRESHOLD_: '4194304' });
      });
    } finally {
      if (before === undefined) delete process.env['GLIBC_TUNABLES'];
      else process.env['GLIBC_TUNABLES'] = before;
    }
  }, 60_000);

  it('the nanny killed with -9 takes its worker with it', async () => {
    await withCluster({ workers: 1 }, async (cluster, client) => {
      const [w] = await client.workers();
      const nanny = cluster.workers[0]?.nannyPid;
      if (!w || !nanny) throw new Error('no worker');
      expect(nanny).not.toBe(w.pid);
      expect(cluster.workers[0]?.pid).toBe(w.pid);
      process.kill(nanny, 'SIGKILL');
      await waitFor(() => !alive(w.pid), 10_000, 'the worker to stop with its nanny');
    });
  }, 60_000);

  it('a worker that had run comes back at once; one that dies starting waits a back-off that doubles, and still comes back', async () => {
    // A worker counts as dying in its start-up within 2 s of joining; back-offs of 5 s, then 10 s.
    await withCluster({ workers: 1, workerArgs: ['--crash-loop-window', '2s', '--restart-backoff', '5s'] }, async (_cluster, client) => {
      const back = async (victim: number): Promise<{ pid: number; ms: number }> => {
        const killedAt = Date.now();
        process.kill(victim, 'SIGKILL');
        let pid = -1;
        await waitFor(async () => { const [w] = await client.workers(); pid = w && w.pid !== victim ? w.pid : -1; return pid > 0; }, 20_000, 'the worker to come back');
        return { pid, ms: Date.now() - killedAt };
      };
      // Up longer than the window: started again at once, not after the 5 s back-off (a start takes 1-2.6 s on a loaded 2-core machine).
      await new Promise((r) => setTimeout(r, 2500));
      const first = await back(((await client.workers())[0] as { pid: number }).pid);
      expect(first.ms).toBeLessThan(5000);
      // Killed at once, again and again: it dies starting each time. The nanny waits 5 s, then 10 s, and never gives up.
      const second = await back(first.pid);
      expect(second.ms).toBeGreaterThanOrEqual(5000);
      const third = await back(second.pid);
      expect(third.ms).toBeGreaterThanOrEqual(10_000);
      expect(await client.submit((x: number) => x + 1, 1)).toBe(2);
    });
  }, 90_000);

  it('a worker that leaves on purpose (retired: exit 0) stays down, and its nanny leaves too', async () => {
    await withCluster({ workers: 2 }, async (cluster, client) => {
      const retiring = cluster.workers.find((w) => w.name === 'local-1');
      if (!retiring?.nannyPid) throw new Error('no local-1 under a nanny');
      const pid = retiring.pid as number;
      await client.retireWorkers(['local-1']);
      await waitFor(() => !alive(pid) && !alive(retiring.nannyPid as number), 15_000, 'local-1 and its nanny to leave');
      expect((await client.workers()).map((w) => w.name)).toEqual(['local-0']);
    });
  }, 60_000);
});
