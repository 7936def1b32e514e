/**
 * Task functions are forgotten once no task refers to them (real processes):
 * a client making a thousand distinct inline functions leaves the scheduler
 * as it found it once their results are released; and a function's label is
 * its client's own, never another client's for the same source.
 */
import { describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/index.ts';
import { waitFor } from './helpers/util.ts';

/** A cluster whose processes run with --expose-gc, so that memory is measured after a collection. */
async function collectable(opts: Parameters<typeof LocalCluster.start>[0]): Promise<LocalCluster> {
  const before = process.env['WEFT_NODE_ARGS'];
  process.env['WEFT_NODE_ARGS'] = `${before ?? ''} --expose-gc`.trim();
  try {
    return await LocalCluster.start(opts);
  } finally {
    if (before === undefined) delete process.env['WEFT_NODE_ARGS'];
    else process.env['WEFT_NODE_ARGS'] = before;
  }
}

describe('forgetting task functions', () => {
  it('1,000 distinct inline functions of 20 KB, released, leave the scheduler within 10 MB of where it started', async () => {
    const cluster = await collectable({ workers: 1, dashboardPort: null, schedulerArgs: ['--forget-functions-after', '200ms'] });
    const client = await cluster.client();
    try {
      // Warmed up first: the heap of a scheduler that has served a graph.
      expect(await client.submit((x: number) => x + 1, 1)).toBe(2);
      const start = (await client.schedulerStats({ gc: true })).heapUsed;
      const pad = 'x'.repeat(20_000);
      const fns = Array.from({ length: 1000 }, (_, i) => new Function('x', `/* ${i} ${pad} */ return x + ${i};`) as (x: number) => number);
      const futures = fns.map((f) => client.submit(f, 1));
      expect(await client.gather(futures)).toEqual(fns.map((_, i) => 1 + i));
      const held = (await client.schedulerStats({ gc: true })).heapUsed;
      // Their sources are there while the tasks are: 20 MB.
      expect(held - start).toBeGreaterThan(15e6);
      for (const f of futures) f.release();
      await waitFor(async () => (await client.schedulerStats({ gc: true })).heapUsed - start < 10e6, 15_000, "the scheduler's heap to come back within 10 MB");
      // A function forgotten and used again is interned again.
      expect(await client.submit(fns[7] as (x: number) => number, 1)).toBe(8);
    } finally {
      await client.close();
      await cluster.close();
    }
  }, 90_000);

  it("labels a task with its own client's name for its function, not another's for the same source", async () => {
    const cluster = await LocalCluster.start({ workers: 1 });
    const a = await cluster.client();
    const b = await cluster.client();
    try {
      const secretProject = new Function('x', 'return x * 2;') as (x: number) => number;
      Object.defineProperty(secretProject, 'name', { value: 'secretProject' });
      const double = new Function('x', 'return x * 2;') as (x: number) => number;
      Object.defineProperty(double, 'name', { value: 'double' });
      const fa = a.submit(secretProject, 1);
      const fb = b.submit(double, 2);
      expect([await fa, await fb]).toEqual([2, 4]);
      const rows = (await (await fetch(`${cluster.dashboardUrl}/api/v1/tasks?q=${encodeURIComponent(fb.key)}`)).json()) as { key: string; group: string }[];
      expect(rows.find((r) => r.key === fb.key)?.group).toBe('double');
    } finally {
      await a.close();
      await b.close();
      await cluster.close();
    }
  }, 60_000);
});
