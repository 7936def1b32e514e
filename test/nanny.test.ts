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
});
