/**
 * Semaphore, Lock, Event, Variable and Queue with real processes: tasks on
 * two workers and this client share them through the scheduler; a worker
 * killed with -9 while one of its tasks holds a lock gives the lock up.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { LocalCluster } from '../src/cluster/local-cluster.ts';
import type { Client } from '../src/client/client.ts';
import { Event, Lock, Queue, Semaphore, SyncTimeoutError, Variable } from '../src/index.ts';
import { fn, sharedCluster } from './helpers/util.ts';

let cluster: LocalCluster;
let client: Client;
const dir = mkdtempSync(join(tmpdir(), 'weft-sync-'));
sharedCluster({ workers: 2, threadsPerWorker: 4, dashboardPort: null }, (c, cl) => {
  cluster = c;
  client = cl;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('coordination primitives', () => {
  it('a Semaphore of 4 guarding 40 tasks on 8 threads: never more than 4 holders, and 4 at once', async () => {
    const held = await client.gather(Array.from({ length: 40 }, () => client.submitWith<number>({ pure: false }, fn('underSemaphore'), 'db', 4, 30)));
    expect(Math.max(...held)).toBe(4);
    expect(await new Semaphore({ name: 'db', maxLeases: 4, client }).count()).toBe(0);
  }, 60_000);

  it('a task killed with -9 holding a Lock gives it up: a task on the other worker takes it', async () => {
    const flag = join(dir, 'held');
    const waiter = client.submitWith<boolean>({ pure: false }, fn('takeLockAfter'), 'index', flag, 20);
    const dies = client.submitWith<string>({ pure: false }, fn('dieHoldingLock'), 'index', flag);
    expect(await waiter).toBe(true);
    expect(await dies).toBe('ran again after its worker died');
  }, 60_000);

  it('an Event set here starts tasks waiting on it; their Queue items and Variable come back here', async () => {
    const tasks = [1, 2, 3].map((x) => client.submitWith<number>({ pure: false }, fn('afterEvent'), x));
    const out = new Queue<number>({ name: 'out', client });
    await expect(out.get({ timeout: 0.2 })).rejects.toThrow(SyncTimeoutError);
    await new Event({ name: 'go', client }).set();
    expect(await client.gather(tasks)).toEqual([1, 2, 3]);
    const got = [await out.get(), await out.get(), await out.get()].sort();
    expect(got).toEqual([10, 20, 30]);
    expect([1, 2, 3]).toContain(await new Variable<number>({ name: 'last', client }).get({ timeout: 1 }));
    const lock = new Lock({ name: 'mine', client });
    expect(await lock.acquire()).toBe(true);
    expect(await lock.locked()).toBe(true);
    expect(await new Lock({ name: 'mine', client }).acquire({ timeout: 0.1 })).toBe(false);
    await lock.release();
    expect(await lock.locked()).toBe(false);
  }, 60_000);
});

describe('futures held by a Variable and a Queue', () => {
  it('a future set in a Variable or put in a Queue keeps its result on the cluster until taken; the taker gets a future of it', async () => {
    const big = client.submitWith<number>({ pure: false }, fn('inc'), 41);
    await big.done();
    const v = new Variable<typeof big>({ name: 'result', client });
    await v.set(big);
    const q = new Queue<typeof big>({ name: 'results', client });
    await q.put(big);
    // Released here: the variable and the queue still hold it.
    big.release();
    const other = await cluster.client();
    try {
      const fromVar = await new Variable<typeof big>({ name: 'result', client: other }).get();
      expect(await fromVar).toBe(42);
      const fromQueue = await new Queue<typeof big>({ name: 'results', client: other }).get();
      expect(await fromQueue).toBe(42);
      await v.delete();
      // Still wanted by `other`'s futures: the result stays.
      expect(await fromVar).toBe(42);
    } finally {
      await other.close();
    }
  }, 30_000);
});
