/**
 * Integration: client.getAll, a graph read from a generator as it is sent,
 * with at most a window of its tasks out on the cluster at once.
 */
import { describe, expect, it } from 'vitest';
import { GraphError, ref, TaskError, type Client, type TaskDef } from '../src/index.ts';
import { fn, sharedCluster, waitFor } from './helpers/util.ts';

let client: Client;
sharedCluster({ workers: 2, threadsPerWorker: 2, dashboardPort: null }, (_c, cl) => {
  client = cl;
});

describe('getAll', () => {
  it('reads 50,000 entries from a generator as it sends them, keeps at most a window out, and returns every value in order', async () => {
    let read = 0;
    function* entries(): Generator<readonly [string, TaskDef]> {
      for (let i = 0; i < 50_000; i++) {
        read++;
        yield [`ga-${i}`, { fn: fn('inc'), args: [i] }];
      }
    }
    let most = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) most = Math.max(most, (await client.schedulerStats()).tasks);
    })();
    const values = (await client.getAll(entries(), { window: 5_000 })) as number[];
    sampling = false;
    await sampler;
    expect(read).toBe(50_000);
    expect(values.length).toBe(50_000);
    expect(values.every((v, i) => v === i + 1)).toBe(true);
    // A window and a few parts of 4,096 (the one being sent, those released and not yet forgotten), not the graph.
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(5_000 + 3 * 4_096);
    // Every value was released once it came back (the last releases leave on the next turn).
    await waitFor(async () => (await client.schedulerStats()).tasks === 0, 10_000, 'every task released');
  }, 60_000);

  it('an entry may take an earlier entry as input; both values come back', async () => {
    const entries: [string, TaskDef][] = [];
    for (let i = 0; i < 3_000; i++) {
      entries.push([`pair-a-${i}`, { fn: fn('inc'), args: [i] }]);
      entries.push([`pair-b-${i}`, { fn: fn('add'), args: [ref(`pair-a-${i}`), 1000] }]);
    }
    const values = (await client.getAll(entries, { window: 1_000 })) as number[];
    expect(values.length).toBe(6_000);
    for (let i = 0; i < 3_000; i++) expect([values[2 * i], values[2 * i + 1]]).toEqual([i + 1, i + 1001]);
    await waitFor(async () => (await client.schedulerStats()).tasks === 0, 10_000, 'every task released');
  }, 60_000);

  it("fails with a task's error, or a GraphError naming a bad entry, and the cluster goes on", async () => {
    function* failing(): Generator<readonly [string, TaskDef]> {
      for (let i = 0; i < 2_000; i++) yield [`gf-${i}`, i === 1_500 ? { fn: fn('fail'), args: ['entry 1500 failed'] } : { fn: fn('inc'), args: [i] }];
    }
    const err = await client.getAll(failing()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as Error).message).toContain('entry 1500 failed');
    const bad = await client.getAll([['fine', { fn: fn('inc'), args: [1] }], ['nofn', { args: [1] } as unknown as TaskDef]]).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(GraphError);
    expect((bad as Error).message).toContain('nofn');
    expect(await client.getAll([['after', { fn: fn('inc'), args: [41] }]])).toEqual([42]);
  }, 60_000);
});
