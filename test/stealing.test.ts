/**
 * Work stealing with real processes: one worker holds the inputs of tasks
 * queued there; a worker started later takes some of them at once, every
 * result arrives once, and /metrics counts the moves.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalCluster, WEFT_BIN } from '../src/cluster/local-cluster.ts';
import { fn, waitFor } from './helpers/util.ts';

let late: ChildProcess | null = null;
afterAll(() => {
  late?.kill('SIGKILL');
});

describe('work stealing', () => {
  it('a worker that joins takes tasks queued on a busy one; each runs once, and /metrics counts the moves', async () => {
    const cluster = await LocalCluster.start({ workers: 1, threadsPerWorker: 1, dashboardPort: 0 });
    const client = await cluster.client();
    try {
      const inputs = Array.from({ length: 40 }, (_, i) => client.submit<number>(fn('inc'), i));
      await client.gather(inputs);
      const work = inputs.map((x) => client.submit<number>(fn('whereAfter'), x, 150));
      // The first one has run (its kind is measured): then a second worker joins.
      await work[0]?.done();
      late = spawn(process.execPath, [WEFT_BIN, 'worker', cluster.address, '--nthreads', '1', '--no-nanny', '--name', 'late', '--log-level', 'warn'], { stdio: 'ignore' });
      // How many were left when it joined (its start takes longer on a slower machine).
      await waitFor(async () => (await client.workers()).some((w) => w.name === 'late'), 30_000, 'the late worker to join');
      const left = work.filter((f) => f.status === 'pending').length;
      const pids = await client.gather(work);
      const byPid = new Map<number, number>();
      for (const p of pids) byPid.set(p, (byPid.get(p) ?? 0) + 1);
      expect(byPid.has(late.pid as number)).toBe(true);
      // Split about evenly from when it joined: at least a quarter of those left then on the newcomer.
      expect(left).toBeGreaterThanOrEqual(8);
      expect(byPid.get(late.pid as number)).toBeGreaterThanOrEqual(Math.floor(left / 4));
      const metrics = await (await fetch(`${cluster.dashboardUrl}/metrics`)).text();
      const stolen = Number(/^weft_tasks_stolen_total (\d+)/m.exec(metrics)?.[1]);
      expect(stolen).toBe(byPid.get(late.pid as number));
      const late2 = (await client.workers()).find((w) => w.name === 'late');
      expect(late2?.stolenIn).toBe(stolen);
    } finally {
      await client.close();
      late?.kill('SIGTERM');
      await cluster.close();
    }
  });
});
