import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll } from 'vitest';
import { join } from 'node:path';
import { LocalCluster, type Client, type Future, type LocalClusterOptions, type WorkerSummary } from '../../src/index.ts';
/** Shared helpers for integration tests. */
export const TASKS = new URL('../fixtures/tasks.ts', import.meta.url).href;
export const fn = (name: string): string => `${TASKS}#${name}`;

/** True while a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Waits until `cond()` holds, checking every 25 ms, for at most `ms`. For
 * conditions no event announces (another process's exit); bounded in time.
 */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * A LocalCluster and a client of it for the tests of one file: started
 * before them (handed to `use`), stopped after them.
 */
export function sharedCluster(opts: LocalClusterOptions, use: (cluster: LocalCluster, client: Client) => void): void {
  let cluster: LocalCluster | undefined;
  let client: Client | undefined;
  beforeAll(async () => {
    cluster = await LocalCluster.start(opts);
    client = await cluster.client();
    use(cluster, client);
  });
  afterAll(async () => {
    await client?.close();
    await cluster?.close();
  });
}

/** Runs `body` against a fresh LocalCluster and a client of it; stops both whatever happens. */
export async function withCluster(opts: LocalClusterOptions, body: (cluster: LocalCluster, client: Client) => Promise<void>): Promise<void> {
  const cluster = await LocalCluster.start(opts);
  let client: Client | undefined;
  try {
    client = await cluster.client();
    await body(cluster, client);
  } finally {
    await client?.close();
    await cluster.close();
  }
}

/** The cluster's first two workers (a test that moves data between workers needs both). */
export async function twoWorkers(client: Client): Promise<[WorkerSummary, WorkerSummary]> {
  const [a, b] = await client.workers();
  if (!a || !b) throw new Error('two workers expected');
  return [a, b];
}

/**
 * Starts the fixtures' `spinForever` on `worker` (a task that never returns
 * and ignores its signal) and resolves once it runs, with its future
 * (wrapped: a Future is thenable, so a promise of one resolves to its value).
 */
export async function startRunaway(client: Client, worker: string): Promise<{ runaway: Future }> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-runaway-'));
  try {
    const started = join(dir, 'spinning');
    const runaway = client.submit(fn('spinForever'), started, { workers: [worker] });
    await waitFor(() => existsSync(started), 15_000, 'the runaway task to start');
    return { runaway };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs `body`; resolves with the tasks each worker (by address) executed meanwhile. */
export async function executedDuring(client: Client, body: () => Promise<unknown>): Promise<number[]> {
  const before = await client.workerMetrics();
  await body();
  const after = await client.workerMetrics();
  return Object.keys(after).map((address) => (after[address]?.tasksExecuted ?? 0) - (before[address]?.tasksExecuted ?? 0));
}
