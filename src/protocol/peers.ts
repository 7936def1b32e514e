/**
 * Connections to workers' data servers, one per address, opened on first use
 * and reused. Used by workers to fetch dependencies from peers and by clients
 * to gather results and scatter data: data never goes through the scheduler.
 */
import type { Connection, ConnectionLimits } from './connection.ts';
import { connect } from './handshake.ts';
import { messageSchemas, type PeerToWorker, type WorkerToPeer } from './messages.ts';
import { Requests } from './requests.ts';
import type { TlsOptions } from './tls.ts';

interface Peer {
  conn: Connection<WorkerToPeer, PeerToWorker>;
  requests: Requests<WorkerToPeer>;
}

/** A request to a worker's data port, without its id (given when sent). */
export type PeerRequest = PeerToWorker extends infer M ? (M extends { id: number } ? Omit<M, 'id'> : never) : never;

export class PeerPool {
  private peers = new Map<string, Promise<Peer>>();
  private closed = false;

  constructor(
    private readonly role: 'peer' | 'client',
    private readonly token: string | undefined,
    private readonly limits?: ConnectionLimits,
    private readonly tls: TlsOptions | null = null,
  ) {}

  /** Sends a request to the worker at `address` and waits for its reply. */
  async request(address: string, req: PeerRequest): Promise<WorkerToPeer> {
    const peer = await this.get(address);
    return peer.requests.start((id) => peer.conn.send({ ...req, id } as PeerToWorker));
  }

  /** Forgets the connection to `address` (a peer that stopped answering): the next request opens a new one. */
  drop(address: string): void {
    const p = this.peers.get(address);
    if (!p) return;
    this.peers.delete(address);
    p.then((peer) => peer.conn.ws.terminate()).catch(() => {});
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.peers.values()];
    this.peers.clear();
    for (const p of all) {
      try {
        (await p).conn.close(1000, 'closing');
      } catch {
        // a peer that never connected has nothing to close
      }
    }
  }

  private get(address: string): Promise<Peer> {
    if (this.closed) return Promise.reject(new Error('peer pool is closed'));
    const hit = this.peers.get(address);
    if (hit) return hit;
    const p = connect<WorkerToPeer, PeerToWorker>(address, {
      role: this.role,
      token: this.token,
      schema: messageSchemas().workerToPeer,
      ...(this.limits ? { limits: this.limits } : {}),
      timeoutMs: 5_000,
      label: address,
      tls: this.tls,
    }).then((conn) => {
      const requests = new Requests<WorkerToPeer>();
      conn.onMessages((msgs) => {
        for (const m of msgs) requests.resolve(m.id, m);
      });
      conn.onClose((code, reason) => {
        if (this.peers.get(address) === p) this.peers.delete(address);
        requests.failAll(`connection to ${address} closed (${code}${reason ? `: ${reason}` : ''})`);
      });
      return { conn, requests };
    });
    p.catch(() => {
      if (this.peers.get(address) === p) this.peers.delete(address);
    });
    this.peers.set(address, p);
    return p;
  }
}
