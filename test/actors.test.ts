/**
 * Actors with real processes: a counter kept on one worker, its methods
 * called straight on that worker, one after another; when its worker is
 * killed with -9, the call in flight fails with ActorLostError and the
 * actor is made again on another worker, its state from scratch.
 */
import { describe, expect, it } from 'vitest';
import type { LocalCluster } from '../src/cluster/local-cluster.ts';
import type { Client } from '../src/client/client.ts';
import { ActorLostError, TaskError } from '../src/index.ts';
import type { Counter } from './fixtures/tasks.ts';
import { fn, waitFor, sharedCluster } from './helpers/util.ts';

let cluster: LocalCluster;
let client: Client;
sharedCluster({ workers: 2, threadsPerWorker: 1, dashboardPort: null }, (c, cl) => {
  cluster = c;
  client = cl;
});

describe('actors', () => {
  it('keeps its state on one worker; calls arrive one after another; a missing method is a clear error', async () => {
    const counter = await client.actor<Counter>(fn('Counter'), 10);
    expect(await counter.increment()).toBe(11);
    expect(await counter.increment(5)).toBe(16);
    const many = await Promise.all(Array.from({ length: 20 }, () => counter.increment()));
    expect([...many].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => 17 + i));
    expect(cluster.workers.map((w) => w.pid)).toContain(await counter.where());
    const bad = counter as unknown as { nothing(): Promise<unknown> };
    await expect(bad.nothing()).rejects.toThrow(TaskError);
    await expect(bad.nothing()).rejects.toThrow(/has no method nothing/);
    counter.release();
    await waitFor(async () => {
      try {
        await counter.increment();
        return false;
      } catch (err) {
        return err instanceof ActorLostError;
      }
    }, 10_000, 'the released actor to be gone');
  });

  it('its worker killed with -9: the call in flight fails with ActorLostError, then the actor is made again elsewhere from scratch', async () => {
    const counter = await client.actor<Counter>(fn('Counter'), 100);
    expect(await counter.increment()).toBe(101);
    const pid = await counter.where();
    const inFlight = counter.slowIncrement(5000);
    await new Promise((r) => setTimeout(r, 200));
    process.kill(pid, 'SIGKILL');
    await expect(inFlight).rejects.toThrow(ActorLostError);
    // Made again (on the other worker, or this one's restarted process): its state from its constructor.
    expect(await counter.increment()).toBe(101);
    expect(await counter.where()).not.toBe(pid);
    counter.release();
  }, 60_000);
});
