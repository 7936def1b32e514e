import { LocalCluster, type Client, type LocalClusterOptions } from '../../src/index.ts';
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
