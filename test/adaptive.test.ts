/**
 * Adaptive scaling with real processes: a LocalCluster that adapts grows
 * under a burst of work and shrinks back to its minimum afterwards, every
 * result kept (the retired workers hand theirs on; nothing is computed again).
 */
import { describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/cluster/local-cluster.ts';
import { fn, waitFor } from './helpers/util.ts';

describe('adaptive scaling', () => {
  it('grows under a burst, then shrinks back to the minimum with every result kept', async () => {
    const cluster = await LocalCluster.start({ workers: 1, threadsPerWorker: 1, dashboardPort: 0 });
    const client = await cluster.client();
    try {
      cluster.adapt({ minimum: 1, maximum: 3, interval: 0.2, targetDuration: 1, waitCount: 2 });
      const work = Array.from({ length: 30 }, (_, i) => client.submitWith<number>({ pure: false }, fn('whereAfter'), i, 200));
      await waitFor(() => cluster.workers.length === 3, 20_000, 'the cluster to grow to 3 workers');
      const pids = await client.gather(work);
      // The burst ran on more than the one worker it started with.
      expect(new Set(pids).size).toBeGreaterThan(1);
      const runs = (await client.schedulerStats()).taskRuns;
      await waitFor(() => cluster.workers.length === 1, 30_000, 'the cluster to shrink back to 1 worker');
      expect((await client.workers()).length).toBe(1);
      // Every result is still there, none computed again.
      expect(await client.gather(work)).toEqual(pids);
      expect((await client.schedulerStats()).taskRuns).toBe(runs);
      const target = (await (await fetch(`${cluster.dashboardUrl}/api/v1/adaptive_target`)).json()) as { workers: number };
      expect(target.workers).toBe(0);
    } finally {
      await client.close();
      await cluster.close();
    }
  }, 90_000);

  it('scale(n) starts and retires workers', async () => {
    const cluster = await LocalCluster.start({ workers: 1, threadsPerWorker: 1, dashboardPort: null });
    const client = await cluster.client();
    try {
      const x = client.submit<number>(fn('inc'), 41);
      await cluster.scale(3);
      expect((await client.workers()).map((w) => w.name).sort()).toEqual(['local-0', 'local-1', 'local-2']);
      await cluster.scale(1);
      expect((await client.workers()).length).toBe(1);
      expect(await x).toBe(42);
      await expect(cluster.scale(-1)).rejects.toThrow(/whole number of workers/);
    } finally {
      await client.close();
      await cluster.close();
    }
  }, 60_000);
});
