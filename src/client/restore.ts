/**
 * Giving back lost results this client has (the scheduler's side is
 * scheduler/restore.ts). While a `get` runs, each value it has fetched stays
 * on its key's record (KeyState.copy) until the call returns. When the
 * scheduler says keys were lost with their worker, the ones with a copy go
 * back to the workers (a partial put: a worker that knows a key already
 * keeps its own) and the scheduler hears where they are, instead of
 * computing them, and their lost inputs, again. Best effort: what cannot go
 * back is computed again, as without it.
 */
import { encodeOwned } from '../protocol/codec.ts';
import type { ClientToScheduler, WorkerToPeer } from '../protocol/messages.ts';
import { NO_COPY, type KeyState } from './keys.ts';

/** What giving values back needs of the client. */
export interface RestoreLink {
  /** The addresses of the workers now. */
  workers(): Promise<string[]>;
  put(address: string, keys: string[], blobs: Uint8Array[]): Promise<WorkerToPeer>;
  send(msg: Extract<ClientToScheduler, { op: 'restore' }>): void;
  log(data: Record<string, unknown>, msg: string): void;
}

export class Restorer {
  private pending: KeyState[] = [];
  private scheduled = false;

  constructor(private readonly link: RestoreLink) {}

  /** Records the scheduler just said were lost: those with a copy go back, together on the next turn (one worker's loss names thousands). */
  lost(states: readonly KeyState[]): void {
    for (const ks of states) if (ks.copy !== NO_COPY) this.pending.push(ks);
    if (this.pending.length === 0 || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const batch = this.pending;
      this.pending = [];
      this.giveBack(batch).catch((err: unknown) => this.link.log({ keys: batch.length, err: (err as Error).message }, 'could not give lost results back: they are computed again'));
    });
  }

  private async giveBack(states: KeyState[]): Promise<void> {
    const addresses = await this.link.workers();
    if (addresses.length === 0) return;
    // Spread over the workers, as scatter does; the copy may have gone since (the call returned).
    const perWorker = addresses.map(() => ({ keys: [] as string[], blobs: [] as Uint8Array[] }));
    let n = 0;
    for (const ks of states) {
      if (ks.copy === NO_COPY || ks.status !== 'pending') continue;
      const to = perWorker[n++ % perWorker.length] as { keys: string[]; blobs: Uint8Array[] };
      to.keys.push(ks.key);
      to.blobs.push(encodeOwned(ks.copy));
    }
    await Promise.all(
      perWorker.map(async ({ keys, blobs }, i) => {
        if (keys.length === 0) return;
        const address = addresses[i] as string;
        const r = await this.link.put(address, keys, blobs);
        if (r.op !== 'put-ok') return;
        const refused = new Set(r.refused ?? []);
        const kept = refused.size > 0 ? keys.filter((k) => !refused.has(k)) : keys;
        if (kept.length > 0) this.link.send({ op: 'restore', keys: kept, nbytes: r.nbytes, worker: address });
      }),
    );
  }
}
