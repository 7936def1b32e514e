/** wait and asCompleted (Dask's) against a real cluster. */
import { describe, expect, it } from 'vitest';
import { asCompleted, wait, WaitTimeoutError, type Future } from '../src/index.ts';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fn, waitFor, withCluster } from './helpers/util.ts';

describe('waiting on many futures', () => {
  it('asCompleted yields futures in the order they complete, takes more while iterating, and counts an error as completed', async () => {
    await withCluster({ workers: 2, logLevel: 'warn' }, async (_cluster, client) => {
      const slow = client.submit<number>(fn('slowInc'), 1, 1500);
      const fast = client.submit<number>(fn('slowInc'), 2, 50);
      const ac = asCompleted<unknown>([slow, fast]);
      const order: string[] = [];
      let added: Future | null = null;
      for await (const f of ac) {
        order.push(f.key);
        if (!added) {
          added = client.submit(fn('fail'), 'on purpose');
          ac.add(added);
        }
      }
      expect(order[0]).toBe(fast.key);
      expect(order).toHaveLength(3);
      expect(new Set(order)).toEqual(new Set([slow.key, fast.key, (added as Future | null)?.key]));
      expect(added?.status).toBe('error');
      expect(await slow).toBe(2);
    });
  }, 60_000);

  it('wait returns at the first completion, or all; and gives up with WaitTimeoutError at its timeout', async () => {
    await withCluster({ workers: 2, logLevel: 'warn' }, async (_cluster, client) => {
      const slow = client.submit<number>(fn('slowInc'), 10, 2000);
      const fast = client.submit<number>(fn('slowInc'), 20, 50);
      const first = await wait([slow, fast], { returnWhen: 'FIRST_COMPLETED' });
      expect(first.done.map((f) => f.key)).toEqual([fast.key]);
      expect(first.notDone.map((f) => f.key)).toEqual([slow.key]);
      await expect(wait([slow], { timeout: 0.2 })).rejects.toBeInstanceOf(WaitTimeoutError);
      const all = await wait([slow, fast]);
      expect(all.done).toHaveLength(2);
      expect(all.notDone).toHaveLength(0);
      expect(await wait([])).toEqual({ done: [], notDone: [] });
    });
  }, 60_000);

  it('fireAndForget: the task runs to its end after its client let go of it and left', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-faf-'));
    try {
      await withCluster({ workers: 1, logLevel: 'warn' }, async (cluster) => {
        const other = await cluster.client();
        const kept = join(dir, 'kept');
        const dropped = join(dir, 'dropped');
        const a = other.submit(fn('writeLater'), kept, 'done', 800);
        const b = other.submit(fn('writeLater'), dropped, 'done', 800);
        other.fireAndForget([a]);
        a.release();
        b.release();
        await other.close();
        // a still runs to its end; b, let go without fireAndForget, is dropped with its client.
        await waitFor(() => existsSync(kept), 20_000, 'the fired-and-forgotten task to write its file');
        await new Promise((r) => setTimeout(r, 1500));
        expect(existsSync(dropped)).toBe(false);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('whoHas names the worker holding each result, and none for one not made yet', async () => {
    await withCluster({ workers: 2, logLevel: 'warn' }, async (cluster, client) => {
      const [a] = await client.workers();
      if (!a) throw new Error('no worker');
      const here = client.submitWith<number>({ workers: [a.name] }, fn('inc'), 1);
      await here.done();
      const later = client.submit<number>(fn('slowInc'), 1, 3000);
      const who = await client.whoHas([here, later]);
      expect(who[here.key]).toEqual([a.address]);
      expect(who[later.key]).toEqual([]);
      expect(cluster.workers.map((w) => w.address)).toContain(a.address);
      await later.cancel();
    });
  }, 60_000);

  it('datasets: results published by one client outlive it, for another client, until unpublished', async () => {
    await withCluster({ workers: 1, logLevel: 'warn' }, async (cluster, client) => {
      const maker = await cluster.client();
      const xs = [1, 2, 3].map((i) => maker.submit<number>(fn('inc'), i * 10));
      await maker.publishDataset('numbers', xs);
      await expect(maker.publishDataset('numbers', xs)).rejects.toThrow(/exists/);
      await maker.close();
      expect(await client.listDatasets()).toEqual(['numbers']);
      const got = await client.getDataset<number>('numbers');
      expect(await client.gather(got)).toEqual([11, 21, 31]);
      await client.unpublishDataset('numbers');
      expect(await client.listDatasets()).toEqual([]);
      await expect(client.getDataset('numbers')).rejects.toThrow(/no dataset named numbers/);
      // The futures this client took still hold the results.
      expect(await client.gather(got)).toEqual([11, 21, 31]);
      // futureOf is a future at once (not a promise of one), which errs for a key nobody submitted.
      const unknown = client.futureOf('nobody-submitted-this');
      await expect(unknown.done()).rejects.toThrow(/does not know key nobody-submitted-this/);
    });
  }, 60_000);
});
