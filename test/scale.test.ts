/**
 * Integration: the scheduler at scale, with real processes. A 200,000-task
 * graph is taken in while the scheduler keeps answering another client and
 * hearing its workers; a scheduler stopped (SIGSTOP) for longer than the
 * heartbeat timeout does not blame its workers for its own silence.
 */
import { describe, expect, it } from 'vitest';
import { ref, type GraphMap, type TaskDef } from '../src/index.ts';
import { fn, twoWorkers, waitFor, withCluster } from './helpers/util.ts';

/** A binary tree over n leaves: 2n - 1 tasks, the root last. */
function tree(n: number, prefix: string): { graph: GraphMap; root: string } {
  const g = new Map<string, TaskDef>();
  for (let i = 0; i < n; i++) g.set(`${prefix}-0-${i}`, { fn: fn('inc'), args: [i] });
  let level = 0;
  let width = n;
  while (width > 1) {
    for (let j = 0; j + 1 < width; j += 2) g.set(`${prefix}-${level + 1}-${j / 2}`, { fn: fn('add'), args: [ref(`${prefix}-${level}-${j}`), ref(`${prefix}-${level}-${j + 1}`)] });
    if (width % 2) g.set(`${prefix}-${level + 1}-${(width - 1) / 2}`, { fn: fn('inc'), args: [ref(`${prefix}-${level}-${width - 1}`)] });
    width = Math.ceil(width / 2);
    level++;
  }
  return { graph: g, root: `${prefix}-${level}-0` };
}

describe('the scheduler at scale', () => {
  it('keeps answering another client while it takes in and runs a 200,000-task graph', async () => {
    await withCluster({ workers: 2, logLevel: 'warn' }, async (cluster, client) => {
      const other = await cluster.client();
      try {
        const { graph, root } = tree(100_000, 't');
        let done = false;
        const result = client.get(graph, [root]).finally(() => (done = true));
        // Another client asks for the workers over and over; every answer must come within a bounded wait.
        let answers = 0;
        let slowest = 0;
        while (!done) {
          const start = performance.now();
          const workers = await Promise.race([other.workers(), new Promise<null>((resolve) => setTimeout(() => resolve(null), 10_000))]);
          expect(workers, 'the scheduler did not answer within 10 s while taking in the graph').not.toBeNull();
          expect(workers?.length).toBe(2);
          slowest = Math.max(slowest, performance.now() - start);
          answers++;
        }
        // sum of (i + 1) for i < 100,000, with one inc per odd level width on the way up.
        expect(((await result) as number[])[0]).toBeGreaterThanOrEqual(5_000_050_000);
        expect(answers).toBeGreaterThan(1);
        // Released once gathered: the scheduler forgets the graph (a slice of releases at a time).
        await waitFor(async () => (await other.schedulerStats()).tasks === 0, 30_000, 'the scheduler to forget the graph');
      } finally {
        await other.close();
      }
    });
  }, 120_000);

  it('passes large values between threads and workers, and to the client, intact', async () => {
    await withCluster({ workers: 2, logLevel: 'warn' }, async (_cluster, client) => {
      const [a, b] = await twoWorkers(client);
      const n = 4 * 1024 * 1024;
      const g = new Map<string, TaskDef>();
      for (const kind of ['Uint8Array', 'Float64Array', 'Buffer'] as const) {
        g.set(`big-${kind}`, { fn: fn('pattern'), args: [kind, kind === 'Float64Array' ? n / 8 : n, 5], workers: [a.name] });
        // Made on one worker, taken by a task on the other: the value crosses threads and workers.
        g.set(`bumped-${kind}`, { fn: fn('bump'), args: [ref(`big-${kind}`)], workers: [b.name] });
      }
      const keys = [...g.keys()];
      const values = (await client.get(g, keys)) as unknown[];
      const byKey = new Map(keys.map((k, i) => [k, values[i]]));
      for (const kind of ['Uint8Array', 'Float64Array', 'Buffer'] as const) {
        const big = byKey.get(`big-${kind}`) as Uint8Array | Float64Array;
        expect(big.constructor.name).toBe(kind === 'Buffer' ? 'Buffer' : kind);
        const len = kind === 'Float64Array' ? n / 8 : n;
        expect(big.length).toBe(len);
        let expectedSum = 0;
        for (let i = 0; i < len; i++) {
          const v = kind === 'Float64Array' ? i * 0.5 + 5 : (i * 31 + 5) & 0xff;
          expectedSum += v;
          if (big[i] !== v) throw new Error(`${kind} element ${i} is ${big[i]}, expected ${v}`);
        }
        const bumped = byKey.get(`bumped-${kind}`) as { sum: number; out: Uint8Array | Float64Array; kind: string };
        expect(bumped.sum).toBe(expectedSum);
        expect(bumped.out.length).toBe(len);
        expect(bumped.out[1]).toBe(kind === 'Float64Array' ? 0.5 + 5 + 1 : ((31 + 5) & 0xff) + 1);
      }
    });
  }, 60_000);

  it('a large input fetched from another worker, changed in place and returned, goes back whole; its source keeps its own value', async () => {
    await withCluster({ workers: 2, logLevel: 'warn' }, async (_cluster, client) => {
      const [a, b] = await twoWorkers(client);
      const n = 4 * 1024 * 1024;
      const g = new Map<string, TaskDef>();
      for (const kind of ['Uint8Array', 'Buffer'] as const) {
        for (let i = 0; i < 3; i++) {
          g.set(`src-${kind}-${i}`, { fn: fn('pattern'), args: [kind, n, i], workers: [a.name] });
          // B's copy of the source is used by this task alone: the thread is given it, and the task returns it changed.
          g.set(`moved-${kind}-${i}`, { fn: fn('bumpInPlace'), args: [ref(`src-${kind}-${i}`)], workers: [b.name] });
        }
      }
      const keys = [...g.keys()];
      const values = (await client.get(g, keys)) as Uint8Array[];
      keys.forEach((k, j) => {
        const v = values[j] as Uint8Array;
        const [, kind, seed] = k.split('-') as [string, string, string];
        expect(`${k}: ${v.constructor.name}`).toBe(`${k}: ${kind}`);
        expect(v.length).toBe(n);
        const bumped = k.startsWith('moved');
        for (let i = 0; i < n; i += 4099) {
          const want = ((i * 31 + Number(seed)) & 0xff) + (bumped && i === 0 ? 1 : 0);
          if (v[i] !== want % 256) throw new Error(`${k}[${i}] is ${v[i]}, expected ${want % 256}`);
        }
        expect(v[n - 1]).toBe(((n - 1) * 31 + Number(seed)) & 0xff);
      });
    });
  }, 60_000);

  it('an input many tasks on one thread take (a shuffle\'s partition) is theirs each: one changing it in place changes no other\'s', async () => {
    await withCluster({ workers: 2, threadsPerWorker: 1, logLevel: 'warn' }, async (_cluster, client) => {
      const [a, b] = await twoWorkers(client);
      const g = new Map<string, TaskDef>();
      const keys: string[] = [];
      for (let s = 0; s < 3; s++) {
        g.set(`part-${s}`, { fn: fn('pieces'), args: [s * 20], workers: [a.name] });
        // Most on the partition's worker (its thread keeps it for the next), some on the other (fetched, then kept there).
        for (let r = 0; r < 40; r++) {
          g.set(`read-${s}-${r}`, { fn: fn('readThenScribble'), args: [ref(`part-${s}`), r % 4], workers: [r % 8 === 7 ? b.name : a.name] });
          keys.push(`read-${s}-${r}`);
        }
      }
      const seen = (await client.get(g, keys)) as number[][];
      keys.forEach((k, i) => {
        const [, s, r] = k.split('-').map(Number) as [number, number, number];
        const piece = r % 4;
        expect(seen[i], k).toEqual([(s * 20 + piece) & 0xff, (s * 20 + 10 + piece) & 0xff, s * 20 + piece + 0.5, (s * 20 + 20 + piece) & 0xff, (s * 20 + 30 + piece) & 0xff, 20]);
      });
    });
  }, 60_000);

  it('a chain of large values mutated in place: its end is right, and every link a client wants keeps its own value', async () => {
    await withCluster({ workers: 2, logLevel: 'warn' }, async (_cluster, client) => {
      const chain = (p: string): GraphMap => {
        const g = new Map<string, TaskDef>([[`${p}-0`, { fn: fn('buffer1m') }]]);
        for (let i = 1; i < 20; i++) g.set(`${p}-${i}`, { fn: fn('bumpInPlace'), args: [ref(`${p}-${i - 1}`)] });
        return g;
      };
      // Only the end wanted: the links between are handed from task to task on one thread, never copied.
      const [end] = (await client.get(chain('a'), ['a-19'])) as Uint8Array[];
      expect(end?.length).toBe(1024 * 1024);
      expect(end?.[0]).toBe(19);
      // Every link wanted: each keeps the value it returned, though the next task changed that buffer in place.
      const keys = Array.from({ length: 20 }, (_, i) => `b-${i}`);
      const all = (await client.get(chain('b'), keys)) as Uint8Array[];
      expect(all.map((v) => v[0])).toEqual(keys.map((_, i) => i));
    });
  }, 60_000);

  it('a scheduler stopped for longer than the heartbeat timeout keeps its workers once it runs again', async () => {
    await withCluster({ workers: 2, logLevel: 'warn', schedulerArgs: ['--heartbeat-timeout', '3s'] }, async (cluster, client) => {
      const pid = cluster.schedulerPid;
      if (!pid) throw new Error('no scheduler pid');
      process.kill(pid, 'SIGSTOP');
      await new Promise((resolve) => setTimeout(resolve, 6000));
      process.kill(pid, 'SIGCONT');
      // Its workers are still there, and work runs on both.
      expect((await client.workers()).length).toBe(2);
      const g = new Map<string, TaskDef>();
      for (let i = 0; i < 20; i++) g.set(`after-${i}`, { fn: fn('inc'), args: [i] });
      expect(await client.get(g, [...g.keys()])).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect((await client.workers()).length).toBe(2);
    });
  }, 60_000);
});
