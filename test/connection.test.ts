import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { encode } from '../src/protocol/codec.ts';
import { Connection, DEFAULT_LIMITS, TURN_BUDGET_MS, type ConnectionLimits } from '../src/protocol/connection.ts';
import { TurnBudget } from '../src/protocol/turn-budget.ts';
import { messageSchemas, type PeerToWorker, type WorkerToPeer } from '../src/protocol/messages.ts';

/** A real WebSocket pair on loopback, each end wrapped in a Connection (the worker's data server side sends). */
async function pair(receiverLimits: ConnectionLimits = DEFAULT_LIMITS): Promise<{ sender: Connection<PeerToWorker, WorkerToPeer>; receiver: Connection<WorkerToPeer, PeerToWorker>; receiverWs: WebSocket; close(): void }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: DEFAULT_LIMITS.maxPayload });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  const { port } = wss.address() as { port: number };
  const accepted = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
  const ws = new WebSocket(`ws://127.0.0.1:${port}`, { maxPayload: DEFAULT_LIMITS.maxPayload });
  await new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const sender = new Connection<PeerToWorker, WorkerToPeer>(await accepted, messageSchemas().peerToWorker);
  const receiver = new Connection<WorkerToPeer, PeerToWorker>(ws, messageSchemas().workerToPeer, receiverLimits);
  return {
    sender,
    receiver,
    receiverWs: ws,
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

  it('handles one connection for at most about 50 ms per event-loop turn, so that a burst of frames lets timers and other sockets in', async () => {
    const { sender, receiver, receiverWs, close } = await pair();
    cleanup = close;
    const n = 10;
    // Every frame in the receiver's socket buffer before it reads any: without the budget, one turn would handle all ten.
    receiverWs.pause();
    const written: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      written.push(new Promise<void>((resolve) => sender.ws.send(encode([{ op: 'data', id: i, keys: [], blobs: [], missing: [] }]), { binary: true }, () => resolve())));
    }
    await Promise.all(written);
    let turns = 0;
    let inTurn = 0;
    const perTurn: number[] = [];
    const done = new Promise<void>((resolve) => {
      receiver.onMessages(() => {
        if (inTurn === 0) {
          turns++;
          setImmediate(() => {
            perTurn.push(inTurn);
            inTurn = 0;
          });
        }
        inTurn++;
        const until = performance.now() + 20; // a handler that takes 20 ms
        while (performance.now() < until);
        if (turns > 0 && perTurn.reduce((a, b) => a + b, 0) + inTurn === n) setImmediate(resolve);
      });
    });
    receiverWs.resume();
    await done;
    expect(perTurn.reduce((a, b) => a + b, 0)).toBe(n);
    // 20 ms each: the budget is spent after the third.
    expect(Math.max(...perTurn)).toBeLessThanOrEqual(4);
    expect(turns).toBeGreaterThanOrEqual(3);
  });
  it('shares one budget per turn among the connections given it, and serves those holding frames back in turn', async () => {
    const turn = new TurnBudget(TURN_BUDGET_MS);
    const a = await pair({ ...DEFAULT_LIMITS, turn });
    const b = await pair({ ...DEFAULT_LIMITS, turn });
    cleanup = () => {
      a.close();
      b.close();
    };
    const n = 8;
    // Every frame of both in their receivers' socket buffers before either reads: with a budget each, one turn would handle three or four of each.
    a.receiverWs.pause();
    b.receiverWs.pause();
    const written: Promise<void>[] = [];
    for (const { sender } of [a, b]) {
      for (let i = 0; i < n; i++) written.push(new Promise<void>((resolve) => sender.ws.send(encode([{ op: 'data', id: i, keys: [], blobs: [], missing: [] }]), { binary: true }, () => resolve())));
    }
    await Promise.all(written);
    const order: string[] = [];
    let inTurn = 0;
    const perTurn: number[] = [];
    const done = new Promise<void>((resolve) => {
      const handler = (name: string) => (): void => {
        if (inTurn === 0)
          setImmediate(() => {
            perTurn.push(inTurn);
            inTurn = 0;
          });
        inTurn++;
        order.push(name);
        const until = performance.now() + 20; // a handler that takes 20 ms
        while (performance.now() < until);
        if (order.length === 2 * n) setImmediate(resolve);
      };
      a.receiver.onMessages(handler('a'));
      b.receiver.onMessages(handler('b'));
    });
    a.receiverWs.resume();
    b.receiverWs.resume();
    await done;
    // 20 ms each: both together get the budget of one, spent after the third.
    expect(Math.max(...perTurn), `frames per turn: ${perTurn.join(', ')}`).toBeLessThanOrEqual(4);
    // In turn: b's frames do not all wait until a's backlog is gone.
    expect(order.indexOf('b'), order.join('')).toBeLessThan(order.lastIndexOf('a'));
  });
  it('lets a handler stop at the turn budget: the rest of its batch comes in a later turn, ahead of newer frames', async () => {
    const { sender, receiver, receiverWs, close } = await pair();
    cleanup = close;
    receiverWs.pause();
    // One frame of six messages, then one of two more.
    const msg = (id: number): object => ({ op: 'data', id, keys: [], blobs: [], missing: [] });
    const written = [encode([0, 1, 2, 3, 4, 5].map(msg)), encode([msg(6), msg(7)])].map((f) => new Promise<void>((resolve) => sender.ws.send(f, { binary: true }, () => resolve())));
    await Promise.all(written);
    const ids: number[] = [];
    let inTurn = 0;
    const perTurn: number[] = [];
    const done = new Promise<void>((resolve) => {
      receiver.onMessages((msgs) => {
        let handled = 0;
        for (const m of msgs) {
          if (handled > 0 && receiver.turnSpent) break;
          handled++;
          if (inTurn === 0)
            setImmediate(() => {
              perTurn.push(inTurn);
              inTurn = 0;
            });
          inTurn++;
          ids.push((m as { id: number }).id);
          const until = performance.now() + 20; // 20 ms of work per message
          while (performance.now() < until);
        }
        if (ids.length === 8) setImmediate(resolve);
        return handled;
      });
    });
    receiverWs.resume();
    await done;
    expect(ids).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    // Without stopping, the first frame's six would take 120 ms in one turn.
    expect(Math.max(...perTurn), `messages per turn: ${perTurn.join(', ')}`).toBeLessThanOrEqual(4);
  });
});
