import { ConnectionClosedError } from '../errors.ts';

/** Pending request/response pairs on one connection, matched by numeric id. */
export class Requests<T> {
  private next = 1;
  private pending = new Map<number, { resolve: (v: T) => void; reject: (e: Error) => void }>();

  /** Registers a request; call `send(id)` to put it on the wire. */
  start(send: (id: number) => void): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      send(id);
    });
  }

  resolve(id: number, value: T): boolean {
    const p = this.pending.get(id);
    if (!p) return false;
    this.pending.delete(id);
    p.resolve(value);
    return true;
  }

  reject(id: number, err: Error): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.reject(err);
  }

  /** Fails every open request (the connection closed). */
  failAll(reason: string): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(new ConnectionClosedError(reason));
  }

  get size(): number {
    return this.pending.size;
  }
}
