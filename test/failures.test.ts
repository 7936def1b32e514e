/**
 * Integration: real failures. Workers killed with SIGKILL, a task that kills
 * its worker, bad tokens and malformed frames, resources nobody offers, and a
 * parent killed while its cluster runs.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { decode, encode } from '../src/protocol/codec.ts';
import { PROTOCOL_VERSION } from '../src/protocol/messages.ts';
import { Client, HandshakeError, KilledWorkerError, LocalCluster, NoWorkerError, ref, type Graph } from '../src/index.ts';
import { WEFT_BIN } from '../src/cluster/local-cluster.ts';
import { alive, fn, waitFor, withCluster } from './helpers/util.ts';

describe('worker failure', () => {
  it('still gives correct results when a worker is killed with SIGKILL in the middle of a graph', async () => {
    await withCluster({ workers: 3 }, async (cluster, client) => {
      // 6 chains of 12 steps, 30 ms each: the graph runs for about a second.
      const graph: Graph = {};
      const outs: string[] = [];
      for (let c = 0; c < 6; c++) {
        graph[`k-${c}-0`] = { fn: fn('slowInc'), args: [c * 100, 30] };
        for (let s = 1; s < 12; s++) graph[`k-${c}-${s}`] = { fn: fn('slowInc'), args: [ref(`k-${c}-${s - 1}`), 30] };
        outs.push(`k-${c}-11`);
      }
      graph['total'] = { fn: fn('add'), args: outs.map((k) => ref(k)) };
      const futures = await client.compute(graph, { keys: ['total', 'k-0-3'] });
      // Kill a worker once some results exist (some of them live only on it).
      await futures['k-0-3']?.done();
      const victim = cluster.workers[1];
      if (!victim?.pid) throw new Error('no victim');
      process.kill(victim.pid, 'SIGKILL');
      const expected = [0, 1, 2, 3, 4, 5].reduce((s, c) => s + c * 100 + 12, 0);
      expect(await futures['total']).toBe(expected);
      // The killed process is gone from the cluster (its nanny may have started a new one under its name meanwhile).
      expect(alive(victim.pid)).toBe(false);
      expect((await client.workers()).map((w) => w.pid)).not.toContain(victim.pid);
    });
  });

  it('fails a task that killed 3 workers with KilledWorkerError, and the cluster goes on', async () => {
    // Without nannies: the workers the task killed stay dead.
    await withCluster({ workers: 4, nanny: false }, async (_cluster, client) => {
      const poison = client.submit(fn('killSelf'));
      const err = await poison.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KilledWorkerError);
      expect((err as Error).message).toMatch(/running on 3 workers that died/);
      expect((await client.workers()).length).toBe(1);
      expect(await client.submit(fn('inc'), 1)).toBe(2);
    });
  });
});

describe('boundaries', () => {
  it('refuses a wrong token and a wrong protocol version, and drops a malformed frame, while other work goes on', async () => {
    const cluster = await LocalCluster.start({ workers: 1, token: 'sesame', logLevel: 'error' });
    try {
      await expect(Client.connect(cluster.address, { token: 'wrong' })).rejects.toThrow(/wrong token/);
      await expect(Client.connect(cluster.address, { token: '' })).rejects.toBeInstanceOf(HandshakeError);
      const good = await cluster.client();
      const running = good.submitWith({ pure: false }, fn('slowInc'), 1, 300);

      const frames = async (payloads: Buffer[]): Promise<{ code: number; replies: unknown[] }> => {
        const ws = new WebSocket(cluster.address, { perMessageDeflate: false });
        await once(ws, 'open');
        const replies: unknown[] = [];
        ws.on('message', (data: Buffer) => replies.push(decode(data)));
        for (const p of payloads) ws.send(p);
        const [code] = (await once(ws, 'close')) as [number];
        return { code, replies };
      };
      const hello = encode([{ op: 'hello', role: 'client', version: PROTOCOL_VERSION, token: 'sesame' }]);
      // Wrong protocol version.
      const v = await frames([encode([{ op: 'hello', role: 'client', version: 99, token: 'sesame' }])]);
      expect(JSON.stringify(v.replies)).toMatch(/protocol version 99 is not supported/);
      // Garbage after a good handshake.
      const garbage = await frames([hello, Buffer.from([0xc1, 0xff, 0x00])]);
      expect(garbage.code).toBe(4400);
      expect(JSON.stringify(garbage.replies)).toMatch(/not valid msgpack|must be a msgpack array/);
      // A well-formed frame with a message of the wrong shape.
      const shape = await frames([hello, encode([{ op: 'who-has', id: 1, keys: 'not-a-list' }])]);
      expect(shape.code).toBe(4400);
      expect(JSON.stringify(shape.replies)).toMatch(/invalid message 0 'who-has': keys/);
      // An unknown message.
      const unknown = await frames([hello, encode([{ op: 'launch-missiles' }])]);
      expect(JSON.stringify(unknown.replies)).toMatch(/invalid message 0 'launch-missiles'/);

      expect(await running).toBe(2);
      expect(await good.submit(fn('inc'), 41)).toBe(42);
      await good.close();

      // A weft client that sends a bad message learns why it was dropped.
      const bad = await cluster.client();
      const pending = bad.submitWith({ pure: false }, fn('slowInc'), 1, 5_000);
      (bad as unknown as { conn: { send(m: object): void } }).conn.send({ op: 'who-has', id: 99, keys: [''] });
      await expect(pending.result()).rejects.toThrow(/invalid message \d+ 'who-has': keys: item 0: expected keys/);
    } finally {
      await cluster.close();
    }
  });

  it('sends values larger than a frame in parts', async () => {
    await withCluster({ workers: 2 }, async (cluster, client) => {
      // 80 MB: more than one 64 MB frame, from one worker to the other and to the client.
      const [w0, w1] = cluster.workers;
      const big = client.submitWith({ workers: [w0?.name ?? ''] }, fn('bytes'), 80_000_000, 9);
      const size = client.submitWith({ workers: [w1?.name ?? ''] }, (b: Uint8Array) => b.length + (b[79_999_999] ?? 0), big);
      expect(await size).toBe(80_000_009);
      const value = (await big) as Uint8Array;
      expect(value.length).toBe(80_000_000);
      expect(value[12345]).toBe(9);
    });
  });
});

describe('resources', () => {
  it('runs a task only on a worker with the resource, and reports one nobody offers', async () => {
    await withCluster({ workers: 2, resources: [{}, { GPU: 1 }], schedulerArgs: ['--no-worker-timeout', '1500ms'] }, async (cluster, client) => {
      const gpuPid = cluster.workers[1]?.pid;
      const placed = await client.gather(Array.from({ length: 4 }, (_, i) => client.submitWith({ resources: { GPU: 1 } }, fn('where'), i)));
      expect(placed.map((p) => (p as { pid: number }).pid)).toEqual([gpuPid, gpuPid, gpuPid, gpuPid]);
      const tpu = client.submitWith({ resources: { TPU: 1 } }, fn('inc'), 1);
      const err = await tpu.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NoWorkerError);
      expect((err as Error).message).toMatch(/TPU=1/);
    });
  });
});

describe('processes', () => {
  it('leaves no orphan when the parent of a LocalCluster is killed with SIGKILL', async () => {
    const script = `
      import { LocalCluster } from ${JSON.stringify(new URL('../src/cluster/local-cluster.ts', import.meta.url).href)};
      const c = await LocalCluster.start({ workers: 2 });
      console.log(JSON.stringify([c.schedulerPid, ...c.workers.map((w) => w.pid)]));
    `;
    const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [line] = (await once(createInterface({ input: parent.stdout }), 'line')) as [string];
    const pids = JSON.parse(line) as number[];
    expect(pids).toHaveLength(3);
    expect(pids.every(alive)).toBe(true);
    parent.kill('SIGKILL');
    await waitFor(() => pids.every((p) => !alive(p)), 15_000, 'cluster processes to exit');
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`stops every process of 'weft cluster' on ${signal}`, async () => {
      const proc = spawn(process.execPath, [WEFT_BIN, 'cluster', '--port', '0', '--dashboard-port', '0', '--workers', '2'], { stdio: ['ignore', 'pipe', 'inherit'] });
      const lines = createInterface({ input: proc.stdout });
      let info: { address: string; dashboard: string; pids: number[] } | null = null;
      for await (const line of lines) {
        if (line.startsWith('{')) {
          info = JSON.parse(line) as { address: string; dashboard: string; pids: number[] };
          break;
        }
      }
      if (!info) throw new Error('weft cluster printed no address');
      expect(info.pids).toHaveLength(4);
      expect((await fetch(`${info.dashboard}/health`)).status).toBe(200);
      const client = await Client.connect(info.address);
      expect(await client.submit((x: number) => x * 2, 21)).toBe(42);
      await client.close();
      const exited = once(proc, 'exit');
      proc.kill(signal);
      const [code] = (await exited) as [number | null];
      expect(code).toBe(0);
      await waitFor(() => (info as { pids: number[] }).pids.every((p) => !alive(p)), 10_000, 'cluster processes to exit');
    });
  }

  it("stops every process of 'npx weft cluster' when npx is killed with -9 (npm passes no signal on)", async () => {
    const root = new URL('..', import.meta.url).pathname;
    const npx = spawn('npx', ['--no-install', 'weft', 'cluster', '--port', '0', '--dashboard-port', '0', '--workers', '1'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let info: { pids: number[] } | null = null;
    for await (const line of createInterface({ input: npx.stdout })) {
      if (line.startsWith('{')) {
        info = JSON.parse(line) as { pids: number[] };
        break;
      }
    }
    if (!info) throw new Error('npx weft cluster printed no pids');
    expect(info.pids.every(alive)).toBe(true);
    npx.kill('SIGKILL');
    await waitFor(() => (info as { pids: number[] }).pids.every((p) => !alive(p)), 15_000, 'the cluster started through npx to stop');
  }, 60_000);

  it('refuses to bind a non-loopback address without a token, and explains flags', () => {
    const r = spawnSync(process.execPath, [WEFT_BIN, 'scheduler', '--host', '0.0.0.0', '--port', '0'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/refusing to listen on 0\.0\.0\.0 without a token/);
    const bad = spawnSync(process.execPath, [WEFT_BIN, 'worker', 'ws://127.0.0.1:1', '--nthreads', 'many'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--nthreads/);
    const help = spawnSync(process.execPath, [WEFT_BIN, 'worker', '--help'], { encoding: 'utf8' });
    expect(help.stdout).toMatch(/--resources R=N/);
  });
});
