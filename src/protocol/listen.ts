/**
 * A WebSocket server for weft's ports (the scheduler's, a worker's data
 * port, the step coordinator's), with a closed door before the handshake.
 * A connection that has not been admitted (`door.admitted`, called by the
 * server once its handshake succeeded) within `handshakeMs` of connecting is
 * closed, whether it sent nothing, half an HTTP request or frames that are
 * not a hello; until then it may send at most `maxPendingBytes`.
 *
 * At most `maxPending` such connections wait at once, and
 * `maxPendingPerAddress` from one address. A new one does not wait for a
 * place: it takes the place of the oldest connection that has sent nothing
 * yet (from its own address first, when that address is at its cap; else the
 * oldest of all), which is dropped and told why: an HTTP 503 before its
 * upgrade, a close with code 1013 after. A flood of silent connections then
 * only churns among its own, and a genuine client, which speaks at once,
 * gets in.
 *
 * Nothing from a browser gets in: a browser's WebSocket always sends an
 * `Origin` header and weft's programs never do, so an upgrade that carries
 * one is refused (403) unless it is in `allowOrigins`. Without that, any web
 * page the user opens could reach a cluster on loopback and run code on it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { WebSocket, WebSocketServer } from 'ws';
import type * as WsPackage from 'ws';
import { DROPPED_BEFORE_HANDSHAKE, type ConnectionLimits } from './connection.ts';
import type { TlsOptions } from './tls.ts';
import { lazyPackage } from '../util/lazy.ts';

const wsPackage = lazyPackage<typeof WsPackage>('ws');

export interface DoorOptions {
  /** Time from the TCP connection to an accepted handshake. */
  handshakeMs: number;
  /** Connections not yet admitted, at most. */
  maxPending: number;
  /** Of those, from one address. */
  maxPendingPerAddress: number;
  /** Bytes a connection may send before it is admitted (a hello is a few hundred). */
  maxPendingBytes: number;
  /** Origins (`https://app.example:8443`) whose pages may open a WebSocket here; none by default. */
  allowOrigins?: readonly string[];
}

export const DEFAULT_DOOR: DoorOptions = { handshakeMs: 5000, maxPending: 256, maxPendingPerAddress: 64, maxPendingBytes: 64 * 1024 };


/** The server's side of the door: a connection whose handshake succeeded is let in. */
export interface Door {
  admitted(ws: WebSocket): void;
  /** Connections not admitted yet (for tests and metrics). */
  readonly pending: number;
}

interface Pending {
  timer: NodeJS.Timeout;
  onData: (chunk: Buffer) => void;
  socket: Socket;
  address: string;
  /** Bytes it sent so far (0: silent). */
  bytes: number;
  /** Its WebSocket, once upgraded. */
  ws: WebSocket | null;
}

/**
 * Starts a WebSocket server (compression off, frame limit set) and returns
 * it with its address (wss:// with `tls`, else ws://) and its door.
 */
export async function listen(host: string, port: number, limits: Pick<ConnectionLimits, 'maxPayload'>, door: DoorOptions = DEFAULT_DOOR, tls: TlsOptions | null = null): Promise<{ server: WebSocketServer; address: string; door: Door }> {
  // A plain HTTP request gets a short answer; the handshake deadline covers a request that never ends.
  const answer = (_req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(426, { 'Content-Type': 'text/plain', Connection: 'close' });
    res.end('weft speaks WebSocket (msgpack frames) on this port\n');
  };
  const http = tls
    ? createTlsServer({ cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca } : {}), requestCert: tls.requireClientCert === true, rejectUnauthorized: tls.requireClientCert === true }, answer)
    : createServer(answer);
  http.headersTimeout = door.handshakeMs;
  http.requestTimeout = door.handshakeMs;
  // By the peer's address and port (oldest first): with TLS, the socket a WebSocket gets wraps the TCP socket counted here.
  const pending = new Map<string, Pending>();
  const perAddress = new Map<string, number>();
  const peer = (s: Socket): string => `${s.remoteAddress}|${s.remotePort}`;
  const release = (id: string): void => {
    const p = pending.get(id);
    if (!p) return;
    pending.delete(id);
    const n = (perAddress.get(p.address) ?? 1) - 1;
    if (n > 0) perAddress.set(p.address, n);
    else perAddress.delete(p.address);
    clearTimeout(p.timer);
    p.socket.off('data', p.onData);
  };
  /** The oldest waiting connection (from `address` only, if given) that has sent nothing, else the oldest of them. */
  const oldest = (address: string | null): string | null => {
    let first: string | null = null;
    for (const [id, p] of pending) {
      if (address !== null && p.address !== address) continue;
      if (p.bytes === 0) return id;
      first ??= id;
    }
    return first;
  };
  const drop = (id: string | null): void => {
    const p = id === null ? undefined : pending.get(id);
    if (!p || id === null) return;
    release(id);
    if (p.ws) p.ws.close(1013, DROPPED_BEFORE_HANDSHAKE);
    else if (tls) p.socket.destroy();
    else if (!p.socket.destroyed) p.socket.end(`HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nweft ${DROPPED_BEFORE_HANDSHAKE}\n`);
    // A peer that does not go: gone within a second anyway.
    setTimeout(() => p.socket.destroy(), 1000).unref();
  };
  http.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '?';
    if ((perAddress.get(address) ?? 0) >= door.maxPendingPerAddress) drop(oldest(address));
    if (pending.size >= door.maxPending) drop(oldest(null));
    const id = peer(socket);
    // Counts the WebSocket frames before the hello (the HTTP upgrade request itself is bounded by Node's header limit).
    const onData = (chunk: Buffer): void => {
      const p = pending.get(id);
      if (!p) return;
      p.bytes += chunk.length;
      if (p.bytes > door.maxPendingBytes) socket.destroy();
    };
    const timer = setTimeout(() => socket.destroy(), door.handshakeMs);
    timer.unref();
    pending.set(id, { timer, onData, socket, address, bytes: 0, ws: null });
    perAddress.set(address, (perAddress.get(address) ?? 0) + 1);
    socket.on('data', onData);
    socket.once('close', () => release(id));
  });
  const allowed = new Set(door.allowOrigins ?? []);
  const server = new (wsPackage().WebSocketServer)({
    server: http,
    perMessageDeflate: false,
    maxPayload: limits.maxPayload,
    verifyClient: (info: { origin: string | undefined; req: IncomingMessage }, done: (ok: boolean, code?: number, message?: string) => void) => {
      const origin = info.req.headers.origin;
      if (origin === undefined || allowed.has(origin)) return done(true);
      done(false, 403, 'weft refuses WebSocket connections from web pages (an Origin header); allow an origin with --allow-origin');
    },
  });
  const sockets = new WeakMap<WebSocket, string>();
  server.on('connection', (ws: WebSocket, req: IncomingMessage) => {
    const id = peer(req.socket);
    sockets.set(ws, id);
    const p = pending.get(id);
    if (p) p.ws = ws;
  });
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
    address: `${tls ? 'wss' : 'ws'}://${shown}:${addr.port}`,
    door: {
      admitted(ws: WebSocket): void {
        const id = sockets.get(ws);
        if (id) release(id);
      },
      get pending(): number {
        return pending.size;
      },
    },
  };
}
