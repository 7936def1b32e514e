/**
 * A task that misbehaves harms itself only, on real clusters: a runaway
 * that ignores cancellation ends with its thread, a task that exits its
 * thread or exhausts its heap fails alone, and the tasks queued behind it on
 * the same thread run on a fresh one.
 */
import { describe, expect, it } from 'vitest';
import { TaskError, type Future, type TaskDef } from '../src/index.ts';
import { executedDuring, startRunaway, twoWorkers, waitFor, withCluster } from './helpers/util.ts';

const TASKS = new URL('./fixtures/tasks.ts', import.meta.url).href;
const fn = (name: string): string => `${TASKS}#${name}`;

describe('runaway tasks', () => {
  it('a cancelled task that ignores its signal ends with its thread after the grace period; a 40-task map then runs on every worker', async () => {
    await withCluster({ workers: 2, workerArgs: ['--cancel-grace', '1'] }, async (_cluster, client) => {
      const [a] = await client.workers();
      const { runaway } = await startRunaway(client, a?.name ?? '');
      await runaway.cancel();
      const g = new Map<string, TaskDef>();
      for (let i = 0; i < 40; i++) g.set(`after-runaway-${i}`, { fn: fn('busy'), args: [20] });
      const executed = await executedDuring(client, async () => {
        const values = (await client.get(g, [...g.keys()])) as number[];
        expect(values.length).toBe(40);
      });
      for (const n of executed) expect(n).toBeGreaterThan(0);
    });
  }, 60_000);
});

describe('a stuck worker', () => {
  it('gets no new work while its only thread runs a cancelled task that ignores its signal', async () => {
    await withCluster({ workers: 2, workerArgs: ['--cancel-grace', '6'] }, async (_cluster, client) => {
      const [a, b] = await twoWorkers(client);
      const { runaway } = await startRunaway(client, a.name);
      await runaway.cancel();
      // Its heartbeat says so within a second.
      await waitFor(async () => (await client.workers()).find((w) => w.name === a.name)?.stuck === 1, 5_000, 'the worker to say it is stuck');
      const ran = (await client.gather(client.map(fn('where'), Array.from({ length: 10 }, (_, i) => i)))) as { pid: number }[];
      expect(ran.every((r) => r.pid === b.pid)).toBe(true);
    });
  }, 60_000);
});

describe('a thread that dies fails only its task', () => {
  /** Tasks on one single-threaded worker: `bad` in the middle of `n - 1` good ones, all posted to the same thread. */
  async function oneBadAmongGood(bad: TaskDef, workerArgs: string[] = []): Promise<{ error: unknown; good: number[] }> {
    let out: { error: unknown; good: number[] } = { error: null, good: [] };
    await withCluster({ workers: 1, workerArgs }, async (_cluster, client) => {
      const g = new Map<string, TaskDef>();
      for (let i = 0; i < 10; i++) g.set(`good-a-${i}`, { fn: fn('inc'), args: [i] });
      g.set('bad', bad);
      for (let i = 0; i < 10; i++) g.set(`good-b-${i}`, { fn: fn('inc'), args: [i] });
      const futures = await client.compute(g, { keys: [...g.keys()] });
      const error = await (futures['bad'] as Future).result().then(
        () => null,
        (e: unknown) => e,
      );
      const good = (await client.gather(Object.entries(futures).filter(([k]) => k.startsWith('good-b')).map(([, f]) => f))) as number[];
      out = { error, good };
    });
    return out;
  }

  it('process.exit(1) in a task', async () => {
    const { error, good } = await oneBadAmongGood({ fn: fn('exitThread'), args: [1] });
    expect(error).toBeInstanceOf(TaskError);
    expect((error as TaskError).remoteName).toBe('ExecutorCrashError');
    expect((error as TaskError).message).toMatch(/exit code 1 \(process\.exit/);
    expect(good).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  }, 60_000);

  it('a task that exhausts its heap (--thread-heap-limit)', async () => {
    const { error, good } = await oneBadAmongGood({ fn: fn('exhaustHeap') }, ['--thread-heap-limit', '64']);
    expect(error).toBeInstanceOf(TaskError);
    expect((error as TaskError).message).toMatch(/ran out of memory \(the thread's heap limit is 64 MB/);
    expect(good).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  }, 60_000);
});
