import type { WebSocketServer } from 'ws';
import type * as WsPackage from 'ws';
import type { ConnectionLimits } from './connection.ts';
import { lazyPackage } from '../util/lazy.ts';

const wsPackage = lazyPackage<typeof WsPackage>('ws');

/** Starts a WebSocket server (compression off, frame limit set) and returns it with its ws:// address. */
export async function listen(host: string, port: number, limits: Pick<ConnectionLimits, 'maxPayload'>): Promise<{ server: WebSocketServer; address: string }> {
  const server = new (wsPackage().WebSocketServer)({ host, port, perMessageDeflate: false, maxPayload: limits.maxPayload });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const addr = server.address();
  if (typeof addr === 'string' || addr === null) throw new Error(`server on ${host}:${port} has no TCP address`);
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return { server, address: `ws://${shown}:${addr.port}` };
}
