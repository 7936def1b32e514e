/**
 * A full spill disk, for real: a small tmpfs (mounted by the test, which CI
 * runs as root) as a worker's --local-directory, nearly filled. The worker
 * stops trying to spill, fails the futures waiting on it with the reason
 * once paused past its timeout, leaves no partial file, and works again
 * once space is freed.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster, TaskError } from '../src/index.ts';
import { fn, waitFor } from './helpers/util.ts';

const dir = mkdtempSync(join(tmpdir(), 'weft-spill-full-'));
const filler = join(dir, 'filler');

beforeAll(() => {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=128m', 'tmpfs', dir]);
  // All but 1 MB taken: no 5 MB result fits.
  writeFileSync(filler, Buffer.alloc(127 * 1024 * 1024, 1));
});
afterAll(() => {
  execFileSync('umount', [dir]);
  rmSync(dir, { recursive: true, force: true });
});

/** Every file under `d`, but the filler. */
function files(d: string): string[] {
  return readdirSync(d).flatMap((name) => {
    const p = join(d, name);
    if (p === filler) return [];
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

describe('a full spill disk', () => {
  it('fails the waiting futures with the reason, leaves no partial file, and recovers once space is freed', async () => {
    // A limit of 500 MB: results past 300 MB held spill; past 400 MB of process memory the worker pauses.
    const cluster = await LocalCluster.start({ workers: 1, memoryLimit: '500MB', dashboardPort: null, workerArgs: ['--local-directory', dir, '--paused-timeout', '2s'] });
    const client = await cluster.client();
    try {
      // 5 MB results, one every 30 ms, held: about 60 of them fill the worker past its pause.
      const futures = Array.from({ length: 100 }, (_, i) => client.submit(fn('bytesLater'), 5 * 1024 * 1024, i % 250, 30));
      const settled = await Promise.allSettled(futures.map((f) => f.result()));
      const failed = settled.filter((s) => s.status === 'rejected').map((s) => (s as PromiseRejectedResult).reason as TaskError);
      expect(failed.length).toBeGreaterThan(0);
      expect(settled.filter((s) => s.status === 'fulfilled').length).toBeGreaterThan(20);
      expect(failed[0]).toBeInstanceOf(TaskError);
      expect(failed[0]?.remoteName).toBe('WorkerPausedError');
      expect(failed[0]?.remoteMessage).toMatch(/cannot spill results to disk \(ENOSPC: no space left on device/);
      // The scheduler knows why; no partial spill file is left on the disk.
      await waitFor(async () => (await client.workers())[0]?.spillBlocked !== undefined, 10_000, 'the scheduler to hear the worker cannot spill');
      expect((await client.workers())[0]?.spillBlocked).toMatch(/ENOSPC/);
      expect(files(dir)).toEqual([]);
      // Space again: the next try (within 5 s) spills, the worker unpauses, new work runs.
      rmSync(filler);
      await waitFor(async () => { const [w] = await client.workers(); return w?.spillBlocked === undefined && w?.paused === false; }, 20_000, 'the worker to spill again and resume');
      expect(files(dir).length).toBeGreaterThan(0);
      expect(await client.submit((x: number) => x + 1, 41)).toBe(42);
    } finally {
      await client.close();
      await cluster.close();
    }
  }, 120_000);
});
