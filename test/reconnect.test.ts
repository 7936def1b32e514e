/**
 * A cluster that survives its scheduler: real processes, real kill -9. A
 * worker that loses the scheduler keeps trying to connect again, and comes
 * back to a new scheduler on the same port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { Client } from '../src/index.ts';
import { WEFT_BIN } from '../src/cluster/local-cluster.ts';
import { alive, waitFor } from './helpers/util.ts';

/** Starts `weft ARGS` and resolves with the process and its first JSON line. */
async function start(args: string[]): Promise<{ proc: ChildProcess; ready: Record<string, string> }> {
  const proc = spawn(process.execPath, [WEFT_BIN, ...args, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, WEFT_TOKEN: '' } });
  for await (const line of createInterface({ input: proc.stdout as NodeJS.ReadableStream })) {
    if (line.startsWith('{')) return { proc, ready: JSON.parse(line) as Record<string, string> };
  }
  throw new Error(`weft ${args[0]} printed nothing`);
}

describe('losing the scheduler', () => {
  it('a worker whose scheduler was killed with -9 connects to the new one on the same port, and work runs on it', async () => {
    const first = await start(['scheduler', '--port', '0', '--no-dashboard']);
    const address = first.ready['address'] as string;
    const port = new URL(address).port;
    const worker = await start(['worker', address, '--no-nanny', '--scheduler-reconnect-timeout', '20']);
    let second: ChildProcess | null = null;
    try {
      const c1 = await Client.connect(address);
      const held = c1.submit((x: number) => x * 2, 21);
      expect(await held).toBe(42);
      first.proc.kill('SIGKILL');
      await waitFor(() => !alive(first.proc.pid as number), 5_000, 'the scheduler to die');
      c1.close().catch(() => {});
      // The worker is still there, waiting for a scheduler.
      expect(alive(worker.proc.pid as number)).toBe(true);
      second = (await start(['scheduler', '--port', port, '--no-dashboard'])).proc;
      const c2 = await Client.connect(address);
      try {
        await waitFor(async () => (await c2.workers()).length === 1, 15_000, 'the worker to connect again');
        const [w] = await c2.workers();
        expect(w?.pid).toBe(worker.proc.pid);
        // What it held, the new scheduler never knew: freed there.
        await waitFor(async () => Object.values(await c2.workerMetrics())[0]?.stored === 0, 10_000, 'the old result to be freed');
        expect(await c2.submit((x: number) => x + 1, 1)).toBe(2);
      } finally {
        await c2.close();
      }
    } finally {
      first.proc.kill('SIGKILL');
      second?.kill('SIGTERM');
      worker.proc.kill('SIGTERM');
    }
  }, 60_000);
});

describe('a scheduler that stops answering', () => {
  it("a client's futures fail with ConnectionClosedError once the scheduler is silent for its timeout; it connects again when the scheduler returns", async () => {
    const scheduler = await start(['scheduler', '--port', '0', '--no-dashboard']);
    const worker = await start(['worker', scheduler.ready['address'] as string, '--no-nanny']);
    try {
      const client = await Client.connect(scheduler.ready['address'] as string, { schedulerTimeoutMs: 1500 });
      expect(await client.submit((x: number) => x + 1, 1)).toBe(2);
      process.kill(scheduler.proc.pid as number, 'SIGSTOP');
      const pending = client.submitWith({ pure: false }, (x: number) => x + 1, 2);
      const err = await pending.result().catch((e: unknown) => e);
      expect((err as Error).name).toBe('ConnectionClosedError');
      expect((err as Error).message).toMatch(/did not answer for 1\.5 s/);
      // The scheduler returns: the client connects again, and new work (the same task too) runs.
      process.kill(scheduler.proc.pid as number, 'SIGCONT');
      await waitFor(async () => {
        try {
          return (await client.workers()).length === 1;
        } catch {
          return false;
        }
      }, 20_000, 'the client to connect again');
      expect(await client.submit((x: number) => x * 10, 4)).toBe(40);
      await client.close();
    } finally {
      process.kill(scheduler.proc.pid as number, 'SIGCONT');
      scheduler.proc.kill('SIGKILL');
      worker.proc.kill('SIGKILL');
    }
  }, 30_000);

  it('a client whose own event loop was busy for longer than the timeout (a graph of millions of tasks built in one go) does not blame the scheduler', async () => {
    const scheduler = await start(['scheduler', '--port', '0', '--no-dashboard']);
    const worker = await start(['worker', scheduler.ready['address'] as string, '--no-nanny']);
    try {
      const client = await Client.connect(scheduler.ready['address'] as string, { schedulerTimeoutMs: 1500 });
      expect(await client.submit((x: number) => x + 1, 1)).toBe(2);
      // Twice the timeout without listening: the scheduler's answers wait unread meanwhile.
      const until = Date.now() + 3000;
      while (Date.now() < until);
      expect(await client.submit((x: number) => x + 1, 2)).toBe(3);
      await client.close();
    } finally {
      scheduler.proc.kill('SIGKILL');
      worker.proc.kill('SIGKILL');
    }
  }, 30_000);
});
