/**
 * Tokens and what a token holder can do, with real processes on loopback:
 * no token on a command line, a token from a file, the refusals off
 * loopback (checked before anything binds), and a put never replacing a
 * result.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { Client, LocalCluster } from '../src/index.ts';
import { WEFT_BIN } from '../src/cluster/local-cluster.ts';
import { encode } from '../src/protocol/codec.ts';
import { contactAddress } from '../src/protocol/exposure.ts';
import { PeerPool } from '../src/protocol/peers.ts';

const TASKS = new URL('./fixtures/tasks.ts', import.meta.url).href;
const TOKEN = 'security-test-token-0123456789abcdef';

describe('tokens', () => {
  it('LocalCluster gives its children the token in their environment, never on a command line', async () => {
    const cluster = await LocalCluster.start({ workers: 1, token: TOKEN });
    try {
      const pids = [cluster.schedulerPid, ...cluster.workers.map((w) => w.pid)];
      expect(pids.length).toBe(2);
      for (const pid of pids) expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).not.toContain(TOKEN);
      const client = await cluster.client();
      expect(await client.submit((x: number) => x + 1, 1)).toBe(2);
      await client.close();
    } finally {
      await cluster.close();
    }
  }, 60_000);

  it('weft scheduler --token-file: the token from a file; a wrong one is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-token-'));
    const file = join(dir, 'token');
    writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
    const proc = spawn(process.execPath, [WEFT_BIN, 'scheduler', '--port', '0', '--no-dashboard', '--token-file', file], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, WEFT_TOKEN: '' } });
    try {
      let address = '';
      for await (const line of createInterface({ input: proc.stdout })) {
        address = (JSON.parse(line) as { address: string }).address;
        break;
      }
      await expect(Client.connect(address, { token: 'not-the-token' })).rejects.toThrow(/wrong token/);
      const client = await Client.connect(address, { token: TOKEN });
      expect((await client.workers()).length).toBe(0);
      await client.close();
    } finally {
      proc.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it('off loopback: no port without a token, nor with one shorter than 16 characters (refused before binding)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-token-'));
    try {
      const short = join(dir, 'short');
      writeFileSync(short, 'abc');
      const env = { ...process.env, WEFT_TOKEN: '' };
      const s = spawnSync(process.execPath, [WEFT_BIN, 'scheduler', '--host', '0.0.0.0', '--port', '0', '--token-file', short], { encoding: 'utf8', env });
      expect(s.status).toBe(2);
      expect(s.stderr).toMatch(/the token is 3 characters; off loopback \(0\.0\.0\.0\) the scheduler needs at least 16/);
      const w = spawnSync(process.execPath, [WEFT_BIN, 'worker', 'ws://127.0.0.1:1', '--host', '0.0.0.0'], { encoding: 'utf8', env });
      expect(w.status).toBe(2);
      expect(w.stderr).toMatch(/refusing to listen on 0\.0\.0\.0 without a token/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a worker bound to every interface advertises an address others can reach', () => {
    expect(contactAddress('ws://127.0.0.1:4000', '127.0.0.1', undefined)).toBe('ws://127.0.0.1:4000');
    expect(contactAddress('ws://0.0.0.0:4000', '0.0.0.0', 'ws://node-7:4000')).toBe('ws://node-7:4000');
    const derived = (() => {
      try {
        return contactAddress('ws://0.0.0.0:4000', '0.0.0.0', undefined);
      } catch (err) {
        return (err as Error).message;
      }
    })();
    // This machine's first external address, or a message asking for --contact-address.
    expect(derived).toMatch(/^ws:\/\/\d+\.\d+\.\d+\.\d+:4000$|--contact-address/);
    expect(derived).not.toContain('0.0.0.0:4000');
  });
});

describe('put', () => {
  it('never replaces a result a worker holds: a token holder cannot poison another client\'s value', async () => {
    const cluster = await LocalCluster.start({ workers: 1, token: TOKEN });
    const client = await cluster.client();
    const peers = new PeerPool('client', TOKEN);
    try {
      const f = client.submit(`${TASKS}#inc`, 41);
      expect(await f).toBe(42);
      const [w] = await client.workers();
      const reply = await peers.request(w?.address ?? '', { op: 'put', keys: [f.key], blobs: [encode('POISONED')] });
      expect(reply.op === 'put-ok' && reply.refused).toEqual([f.key]);
      expect(await client.gather([f])).toEqual([42]);
    } finally {
      await peers.close();
      await client.close();
      await cluster.close();
    }
  }, 60_000);
});
