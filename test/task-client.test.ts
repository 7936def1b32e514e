/**
 * Tasks that launch tasks: a task's own client (taskContext().client()),
 * and secede/rejoin giving its thread slot back while it waits, on real
 * workers of one thread each, where waiting in the slot would deadlock.
 */
import { describe, expect, it } from 'vitest';
import type { Client } from '../src/client/client.ts';
import { fn, sharedCluster } from './helpers/util.ts';

let client: Client;
sharedCluster({ workers: 2, threadsPerWorker: 1, dashboardPort: null }, (_cluster, c) => {
  client = c;
});

describe('tasks that launch tasks', () => {
  it('a recursive Fibonacci by tasks that submit their own subtasks completes on workers of one thread', async () => {
    expect(await client.submit<number>(fn('fib'), 12)).toBe(144);
  }, 60_000);

  it('secede() and rejoin() at module level, around a wait on a subtask', async () => {
    const many = Array.from({ length: 6 }, (_, i) => client.submitWith<number>({ pure: false }, fn('viaModuleLevel'), i));
    expect(await client.gather(many)).toEqual([1, 2, 3, 4, 5, 6]);
  }, 60_000);
});
