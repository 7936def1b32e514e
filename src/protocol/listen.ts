/**
 * A WebSocket server for weft's ports (the scheduler's, a worker's data
 * port, the step coordinator's), with a closed door before the handshake.
 * A connection that has not been admitted (`door.admitted`, called by the
 * server once its handshake succeeded) within `handshakeMs` of connecting is
 * closed, whether it sent nothing, half an HTTP request or frames that are
 * not a hello; until then it may send at most `maxPendingBytes`, and at most
 * `maxPending` such connections are open at once (more are closed at once).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { WebSocket, WebSocketServer } from 'ws';
import type * as WsPackage from 'ws';
import type { ConnectionLimits } from './connection.ts';
import { lazyPackage } from '../util/lazy.ts';

const wsPackage = lazyPackage<typeof WsPackage>('ws');

export interface DoorOptions {
  /** Time from the TCP connection to an accepted handshake. */
  handshakeMs: number;
  /** Connections not yet admitted, at most. */
  maxPending: number;
  /** Bytes a connection may send before it is admitted (a hello is a few hundred). */
  maxPendingBytes: number;
}

export const DEFAULT_DOOR: DoorOptions = { handshakeMs: 5000, maxPending: 256, maxPendingBytes: 64 * 1024 };

/** The server's side of the door: a connection whose handshake succeeded is let in. */
export interface Door {
  admitted(ws: WebSocket): void;
  /** Connections not admitted yet (for tests and metrics). */
  readonly pending: number;
}

interface Pending {
  timer: NodeJS.Timeout;
  onData: (chunk: Buffer) => void;
}

/** Starts a WebSocket server (compression off, frame limit set) and returns it with its ws:// address and its door. */
export async function listen(host: string, port: number, limits: Pick<ConnectionLimits, 'maxPayload'>, door: DoorOptions = DEFAULT_DOOR): Promise<{ server: WebSocketServer; address: string; door: Door }> {
  // A plain HTTP request gets a short answer; the handshake deadline covers a request that never ends.
  const http = createServer((_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(426, { 'Content-Type': 'text/plain', Connection: 'close' });
    res.end('weft speaks WebSocket (msgpack frames) on this port\n');
  });
  http.headersTimeout = door.handshakeMs;
  http.requestTimeout = door.handshakeMs;
  const pending = new Map<Socket, Pending>();
  const release = (socket: Socket): void => {
    const p = pending.get(socket);
    if (!p) return;
    pending.delete(socket);
    clearTimeout(p.timer);
    socket.off('data', p.onData);
  };
  http.on('connection', (socket: Socket) => {
    if (pending.size >= door.maxPending) {
      socket.destroy();
      return;
    }
    let bytes = 0;
    // Counts the WebSocket frames before the hello (the HTTP upgrade request itself is bounded by Node's header limit).
    const onData = (chunk: Buffer): void => {
      bytes += chunk.length;
      if (bytes > door.maxPendingBytes) socket.destroy();
    };
    const timer = setTimeout(() => socket.destroy(), door.handshakeMs);
    timer.unref();
    pending.set(socket, { timer, onData });
    socket.on('data', onData);
    socket.once('close', () => release(socket));
  });
  const server = new (wsPackage().WebSocketServer)({ server: http, perMessageDeflate: false, maxPayload: limits.maxPayload });
  const sockets = new WeakMap<WebSocket, Socket>();
  server.on('connection', (ws: WebSocket, req: IncomingMessage) => sockets.set(ws, req.socket));
  // Closing the WebSocket server leaves a server it was given open: close it too.
  server.once('close', () => {
    http.close();
    http.closeAllConnections();
  });
  await new Promise<void>((resolve, reject) => {
    http.once('listening', resolve);
    http.once('error', reject);
    http.listen(port, host);
  });
  http.on('error', (err) => server.emit('error', err));
  const addr = http.address();
  if (typeof addr === 'string' || addr === null) throw new Error(`server on ${host}:${port} has no TCP address`);
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    server,
    address: `ws://${shown}:${addr.port}`,
    door: {
      admitted(ws: WebSocket): void {
        const socket = sockets.get(ws);
        if (socket) release(socket);
      },
      get pending(): number {
        return pending.size;
      },
    },
  };
}
