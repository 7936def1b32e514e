/**
 * A network partition, for real: the scheduler, one worker and the client
 * in one network namespace, the other worker in a second, joined by a veth
 * pair on link-local addresses (namespaces this test makes and removes;
 * nothing on the machine's own network). Cutting the link (ip link set
 * down) leaves the far worker silent, not disconnected: the scheduler must
 * notice by its heartbeats and compute its work again on the near one.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WEFT_BIN } from '../src/cluster/local-cluster.ts';

const tag = String(process.pid % 100000);
const NEAR = `weft-pa-${tag}`;
const FAR = `weft-pb-${tag}`;
const VETH_NEAR = `wpa${tag}`;
const VETH_FAR = `wpb${tag}`;
const NEAR_IP = '169.254.77.1';
const FAR_IP = '169.254.77.2';
const TOKEN = 'partition-test-token-0123456789';
const ROOT = new URL('..', import.meta.url).pathname;

const ip = (...args: string[]): void => void execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
const procs: ChildProcess[] = [];

/** Runs `command` in namespace `ns`; resolves with the process and a reader of its stdout's JSON lines. */
function inNamespace(ns: string, command: string[]): { proc: ChildProcess; next: () => Promise<Record<string, unknown>> } {
  const proc = spawn('ip', ['netns', 'exec', ns, ...command], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, WEFT_TOKEN: TOKEN } });
  procs.push(proc);
  const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream })[Symbol.asyncIterator]();
  return {
    proc,
    next: async () => {
      for (;;) {
        const { value, done } = await lines.next();
        if (done) throw new Error(`${command.join(' ')} ended without printing`);
        if (String(value).startsWith('{')) return JSON.parse(String(value)) as Record<string, unknown>;
      }
    },
  };
}

beforeAll(() => {
  ip('netns', 'add', NEAR);
  ip('netns', 'add', FAR);
  ip('link', 'add', VETH_NEAR, 'type', 'veth', 'peer', 'name', VETH_FAR);
  ip('link', 'set', VETH_NEAR, 'netns', NEAR);
  ip('link', 'set', VETH_FAR, 'netns', FAR);
  ip('-n', NEAR, 'addr', 'add', `${NEAR_IP}/30`, 'dev', VETH_NEAR);
  ip('-n', FAR, 'addr', 'add', `${FAR_IP}/30`, 'dev', VETH_FAR);
  for (const [ns, dev] of [[NEAR, VETH_NEAR], [FAR, VETH_FAR]] as const) {
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'link', 'set', dev, 'up');
  }
});

afterAll(() => {
  for (const p of procs) p.kill('SIGKILL');
  for (const ns of [NEAR, FAR]) {
    try {
      ip('netns', 'del', ns);
    } catch {
      // already gone
    }
  }
});

describe('a network partition', () => {
  it('a worker cut off by ip link set down is noticed by its heartbeats and its work computed again elsewhere', async () => {
    const node = (...args: string[]): string[] => [process.execPath, WEFT_BIN, ...args, '--log-level', 'error'];
    const scheduler = inNamespace(NEAR, node('scheduler', '--host', NEAR_IP, '--port', '0', '--no-dashboard', '--heartbeat-timeout', '3s'));
    const address = (await scheduler.next())['address'] as string;
    const near = inNamespace(NEAR, node('worker', address, '--host', NEAR_IP, '--name', 'near', '--no-nanny'));
    const far = inNamespace(FAR, node('worker', address, '--host', FAR_IP, '--name', 'far', '--no-nanny'));
    await Promise.all([near.next(), far.next()]);
    const client = inNamespace(NEAR, [process.execPath, '--import', 'tsx', 'test/fixtures/partition-client.ts', address]);
    expect(await client.next()).toEqual({ running: true });
    // The far worker's link goes down: no close, no reset; it just falls silent.
    ip('-n', FAR, 'link', 'set', VETH_FAR, 'down');
    const done = await client.next();
    expect(done['total']).toBe((40 * 41) / 2);
    expect(done['workers']).toEqual(['near']);
  }, 60_000);
});
