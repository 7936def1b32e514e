/**
 * Chaos (real processes, real kill -9 and SIGSTOP): a random DAG of small
 * tasks runs on three workers under their nannies while worker processes
 * are killed at random moments and the scheduler is stopped once for longer
 * than its heartbeat timeout. The graph completes with every value right,
 * and the cluster ends with all its workers. Each seed is named in the
 * test's title and in every failure.
 */
import { describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/index.ts';
import { chaosDag, rng } from '../bench/chaos.ts';
import { alive, waitFor, withCluster } from './helpers/util.ts';

describe('chaos', () => {
  for (const seed of [20261206, 7]) {
    it(`seed ${seed}: a random DAG completes, every value right, through kill -9 of workers and a stopped scheduler; all workers are back`, async () => {
      const { graph, keys, expected } = chaosDag(seed, 2500, 5);
      // Kills come every 0.3-1 s and the stopped scheduler drops every worker at once: a task may well be on three of those, which
      // the default allowed-failures (3) takes for a task that kills workers. Dask's chaos tests raise it likewise.
      const cluster = await LocalCluster.start({ workers: 3, dashboardPort: null, schedulerArgs: ['--heartbeat-timeout', '2s', '--allowed-failures', '10'], workerArgs: ['--crash-loop-window', '1s'] });
      const client = await cluster.client();
      const rand = rng(seed ^ 0x5eed);
      const events: string[] = [];
      try {
        const done = client.get(graph, keys) as Promise<number[]>;
        let finished = false;
        void done.finally(() => (finished = true)).catch(() => {});
        // Six kills of a random worker process at random moments, and once the scheduler stopped for 3 s (its heartbeat timeout is 2 s).
        for (let k = 0; k < 7 && !finished; k++) {
          await new Promise((r) => setTimeout(r, 300 + rand() * 700));
          if (k === 3) {
            const pid = cluster.schedulerPid as number;
            process.kill(pid, 'SIGSTOP');
            events.push('scheduler stopped');
            await new Promise((r) => setTimeout(r, 3000));
            process.kill(pid, 'SIGCONT');
            continue;
          }
          const live = (): number[] => cluster.workers.map((w) => w.pid).filter((p): p is number => p !== undefined && alive(p));
          // All three may be down at once (each back after its nanny's back-off, longer on a slow machine): the kill waits for one.
          if (live().length === 0) await waitFor(() => live().length > 0 || finished, 30_000, `seed ${seed}: a worker to kill (${events.join(', ')})`);
          const pids = live();
          const victim = pids[Math.floor(rand() * pids.length)];
          if (victim === undefined) continue;
          process.kill(victim, 'SIGKILL');
          events.push(`killed ${victim}`);
        }
        const values = await Promise.race([done, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`seed ${seed}: the graph did not finish within 120 s (${events.join(', ')})`)), 120_000))]);
        // All of it happened while the graph ran.
        expect(events, `seed ${seed}: ${events.join(', ')}`).toHaveLength(7);
        const wrong = values.findIndex((v, i) => v !== expected[i]);
        expect(wrong, `seed ${seed}: task ${wrong} is ${values[wrong]}, not ${expected[wrong]} (${events.join(', ')})`).toBe(-1);
        await waitFor(async () => (await client.workers()).length === 3, 30_000, `seed ${seed}: all three workers back (${events.join(', ')})`);
      } finally {
        await client.close();
        await cluster.close();
      }
    }, 180_000);
  }
});

describe('a get through a lost worker', () => {
  it('gives back the results it has fetched, so that the killed worker\'s results are not computed again', async () => {
    const n = 600;
    const { graph, keys, expected } = chaosDag(42, n, 8, 'given-back');
    await withCluster({ workers: 2, dashboardPort: null }, async (cluster, client) => {
      const before = await client.schedulerStats();
      const computed = async (): Promise<number> => (await client.schedulerStats()).tasksComputed - before.tasksComputed;
      const done = client.get(graph, keys) as Promise<number[]>;
      await waitFor(async () => (await computed()) >= n * 0.7, 60_000, '70% of the tasks computed');
      process.kill(cluster.workers[0]?.pid as number, 'SIGKILL');
      const values = await done;
      const wrong = values.findIndex((v, i) => v !== expected[i]);
      expect(wrong, `task ${wrong}`).toBe(-1);
      // The killed worker held about half of the results computed so far; computed
      // again, they would pass n + n/10. Given back, only those finished since the client's last look (250 ms) and the running ones are.
      expect(await computed()).toBeGreaterThanOrEqual(n);
      expect(await computed()).toBeLessThan(n + n / 10);
    });
  }, 120_000);
});

