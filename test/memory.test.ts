/**
 * Memory limits on real workers: results past the limit's target spill to
 * disk (oldest first) and come back intact; the worker processes' peak
 * memory stays under the limit.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { waitFor, withCluster } from './helpers/util.ts';
import { KilledWorkerError, type Future } from '../src/index.ts';

const TASKS = new URL('./fixtures/tasks.ts', import.meta.url).href;
const MB = 1024 * 1024;

/** A process's peak resident memory (VmHWM), bytes. */
function peakRss(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

describe('memory limit', () => {
  it('300 results of 20 MB held by futures on 2 workers limited to 1 GB each: spilled, under the limit, read back intact', async () => {
    await withCluster({ workers: 2, memoryLimit: '1GB' }, async (cluster, client) => {
      const futures: Future<Uint8Array>[] = [];
      // The third argument (ignored by the task) keeps the 300 keys distinct.
      for (let i = 0; i < 300; i++) futures.push(client.submit(`${TASKS}#bytes`, 20 * MB, i % 256, i));
      await Promise.all(futures.map((f) => f.done()));
      const metrics = Object.values(await client.workerMetrics());
      const spilled = metrics.reduce((s, m) => s + (m.spilledBytes ?? 0), 0);
      const managed = metrics.reduce((s, m) => s + (m.managedBytes ?? 0), 0);
      expect(metrics.every((m) => m.memoryLimit === 1e9)).toBe(true);
      // 6,000 MiB made; at most 60% of 2 x 1 GB held in memory, the rest on disk.
      expect(managed).toBeLessThanOrEqual(2 * 0.6e9);
      expect(spilled + managed).toBe(300 * (20 * MB + 7));
      for (const w of cluster.workers) expect(peakRss(w.pid as number)).toBeLessThan(1e9);
      // Every 15th value, read back (from disk for most): intact.
      for (let i = 0; i < 300; i += 15) {
        const v = (await futures[i]?.result()) as Uint8Array;
        expect(v.length).toBe(20 * MB);
        expect([v[0], v[10 * MB], v[20 * MB - 1]]).toEqual([i % 256, i % 256, i % 256]);
      }
      // A task taking spilled inputs gets them back.
      const sum = await client.submit((a: Uint8Array, b: Uint8Array) => a[5]! + b[5]!, futures[1], futures[2]);
      expect(sum).toBe(3);
      // Released, the spilled results leave the disk too.
      for (const f of futures) f.release();
      await expect.poll(async () => Object.values(await client.workerMetrics()).reduce((s, m) => s + (m.spilledBytes ?? 0), 0), { timeout: 15_000 }).toBe(0);
    });
  }, 180_000);

  it('a worker past 95% of its limit stops, and its nanny starts a fresh one under its name; the task that did it fails after three', async () => {
    await withCluster({ workers: 1, memoryLimit: '300MB' }, async (_cluster, client) => {
      const [before] = await client.workers();
      const hog = client.submit(`${TASKS}#holdMemory`, 400, 5000);
      const err = await hog.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KilledWorkerError);
      // The cluster keeps its size: the worker is back, a new process under the same name, and works.
      await waitFor(async () => (await client.workers()).length === 1, 15_000, 'the worker to be back');
      const [after] = await client.workers();
      expect(after?.name).toBe(before?.name);
      expect(after?.pid).not.toBe(before?.pid);
      expect(await client.submit(`${TASKS}#inc`, 1)).toBe(2);
    });
  }, 120_000);
});
