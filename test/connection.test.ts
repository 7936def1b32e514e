import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { Connection, DEFAULT_LIMITS } from '../src/protocol/connection.ts';
import { messageSchemas, type PeerToWorker, type WorkerToPeer } from '../src/protocol/messages.ts';

/** A real WebSocket pair on loopback, each end wrapped in a Connection (the worker's data server side sends). */
async function pair(): Promise<{ sender: Connection<PeerToWorker, WorkerToPeer>; receiver: Connection<WorkerToPeer, PeerToWorker>; close(): void }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: DEFAULT_LIMITS.maxPayload });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  const { port } = wss.address() as { port: number };
  const accepted = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
  const ws = new WebSocket(`ws://127.0.0.1:${port}`, { maxPayload: DEFAULT_LIMITS.maxPayload });
  await new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const sender = new Connection<PeerToWorker, WorkerToPeer>(await accepted, messageSchemas().peerToWorker);
  const receiver = new Connection<WorkerToPeer, PeerToWorker>(ws, messageSchemas().workerToPeer);
  return {
    sender,
    receiver,
    close: () => {
      ws.terminate();
      wss.close();
    },
  };
}

let cleanup: (() => void) | null = null;
afterEach(() => {
  cleanup?.();
  cleanup = null;
});

describe('connection', () => {
  it('delivers each message of a batch as soon as its own raw frames are in, not when the whole batch is', async () => {
    const { sender, receiver, close } = await pair();
    cleanup = close;
    const big = (fill: number): Uint8Array => new Uint8Array(DEFAULT_LIMITS.rawThreshold + 1000).fill(fill);
    const deliveries: WorkerToPeer[][] = [];
    const all = new Promise<void>((resolve) => {
      receiver.onMessages((msgs) => {
        deliveries.push(msgs);
        if (deliveries.flat().length === 4) resolve();
      });
    });
    // One turn: one batch frame carrying four replies, then the raw frames of the first, second and fourth.
    sender.send({ op: 'data', id: 1, keys: ['a'], blobs: [big(1)], missing: [] });
    sender.send({ op: 'data', id: 2, keys: ['b', 'c'], blobs: [big(2), Uint8Array.of(9), big(3)], missing: [] });
    sender.send({ op: 'data', id: 3, keys: ['d'], blobs: [Uint8Array.of(4)], missing: [] });
    sender.send({ op: 'data', id: 4, keys: ['e'], blobs: [big(5)], missing: [] });
    await all;
    expect(deliveries.map((d) => d.map((m) => m.id))).toEqual([[1], [2, 3], [4]]);
    const blobs = deliveries.flat().map((m) => (m.op === 'data' ? m.blobs.map((b) => [b?.length, b?.[0]]) : []));
    const n = DEFAULT_LIMITS.rawThreshold + 1000;
    expect(blobs).toEqual([[[n, 1]], [[n, 2], [1, 9], [n, 3]], [[1, 4]], [[n, 5]]]);
    expect(deliveries.flat().some((m) => 'raw' in m)).toBe(false);
  });
});
