/**
 * The door before the handshake, against a real cluster over loopback:
 * connections that never complete a handshake are closed within its
 * deadline, and what a stranger can make a port hold is bounded.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import type * as WsPackage from 'ws';
import { encode } from '../src/protocol/codec.ts';
import { waitFor, withCluster } from './helpers/util.ts';

const { WebSocket } = (await import('ws')) as unknown as typeof WsPackage;

/** Opens a TCP connection to a ws:// address; resolves once connected. */
function open(address: string): Promise<Socket> {
  const { hostname, port } = new URL(address);
  return new Promise((resolve, reject) => {
    const s = tcpConnect(Number(port), hostname, () => resolve(s));
    s.once('error', reject);
  });
}

/** Resolves with the ms from now until the socket closes (rejects after `ms`). */
function closedWithin(s: Socket, ms: number): Promise<number> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    if (s.destroyed || s.readyState === 'closed') return resolve(0);
    const timer = setTimeout(() => reject(new Error(`socket still open after ${ms} ms`)), ms);
    s.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - start);
    });
    s.on('error', () => {});
    s.resume();
  });
}

describe('before the handshake', () => {
  it('200 silent TCP connections and half HTTP requests are closed within the deadline (scheduler, worker and dashboard ports); a client still connects', async () => {
    await withCluster({ workers: 1 }, async (cluster, client) => {
      const [w] = await client.workers();
      const silent = await Promise.all(Array.from({ length: 200 }, () => open(cluster.address)));
      // A worker's data port too.
      const toWorker = await Promise.all(Array.from({ length: 20 }, () => open(w?.address ?? '')));
      const half = await open(cluster.address);
      // The dashboard's HTTP port too: silent, and half a request.
      const dashboard = (cluster.dashboardUrl ?? '').replace('http://', 'ws://');
      const toDashboard = await Promise.all(Array.from({ length: 5 }, () => open(dashboard)));
      toDashboard[0]?.write('GET /status HTTP/1.1\r\nHost: weft\r\n');
      half.write('GET / HTTP/1.1\r\nHost: weft\r\nUpgrade: websocket\r\n');
      // Meanwhile the door is open to those who say hello.
      const other = await cluster.client();
      expect(await other.submit((x: number) => x + 1, 1)).toBe(2);
      await other.close();
      const start = Date.now();
      await Promise.all([...silent, half, ...toWorker, ...toDashboard].map((s) => closedWithin(s, 10_000)));
      // The deadline is 5 s from connecting.
      expect(Date.now() - start).toBeLessThan(7_000);
      expect(await client.submit((x: number) => x * 3, 3)).toBe(9);
    });
  }, 60_000);

  it('a flood of silent connections from one address, past every cap, keeps no genuine client out; the dropped ones are told why', async () => {
    await withCluster({ workers: 1 }, async (cluster) => {
      const flood: Socket[] = [];
      const told = new Map<Socket, string>();
      let done = false;
      // At least 500, and on until the genuine client is through (2,000 at most).
      const flooding = (async () => {
        for (let i = 0; i < 2000 && (i < 500 || !done); i++) {
          const s = await open(cluster.address);
          s.on('data', (b: Buffer) => told.set(s, (told.get(s) ?? '') + b.toString()));
          s.on('error', () => {});
          flood.push(s);
        }
      })();
      // A genuine client connects once the flood is past the door's caps (256 waiting, 64 from one address), from the same address (loopback), and runs a graph.
      while (flood.length < 300) await new Promise((r) => setImmediate(r));
      const client = await cluster.client();
      try {
        const squares = await client.gather(client.map((n: number) => n * n, [1, 2, 3, 4]));
        expect(squares).toEqual([1, 4, 9, 16]);
        done = true;
        await flooding;
        // The door holds at most 64 from one address: the oldest silent ones were dropped, with a 503 that says why.
        await waitFor(() => told.size >= 400, 10_000, 'the dropped connections to be told');
        expect([...told.values()][0]).toMatch(/^HTTP\/1\.1 503 [\s\S]*weft dropped before its handshake: too many connections were waiting at this port/);
        expect(await client.submit((x: number) => x + 1, 41)).toBe(42);
      } finally {
        await client.close();
        for (const s of flood) s.destroy();
      }
    });
  }, 60_000);

  it('a $parts announcement or big frames before hello close the connection at once, and the scheduler holds nothing', async () => {
    await withCluster({ workers: 1 }, async (cluster, client) => {
      const before = await client.schedulerStats();
      const closes: Promise<number>[] = [];
      for (let i = 0; i < 20; i++) {
        const ws = new WebSocket(cluster.address, { perMessageDeflate: false });
        await new Promise((resolve, reject) => {
          ws.once('open', resolve);
          ws.once('error', reject);
        });
        closes.push(new Promise((resolve) => ws.once('close', (code: number) => resolve(code))));
        if (i % 2 === 0) {
          // A batch of a billion bytes announced, then frames to buffer.
          ws.send(encode([{ op: '$parts', n: 1000, total: 1e9 }]));
        }
        const mib = Buffer.alloc(1024 * 1024, 7);
        for (let j = 0; j < 8; j++) ws.send(mib, () => {});
      }
      const codes = await Promise.all(closes);
      expect(codes.length).toBe(20);
      const after = await client.schedulerStats();
      // 20 x 8 MiB were sent; the scheduler took in at most 64 KiB of each before closing it.
      expect(after.rss - before.rss).toBeLessThan(64 * 1024 * 1024);
      expect(await client.submit((x: number) => x + 1, 41)).toBe(42);
    });
  }, 60_000);
});
