/**
 * Messages the state machine wants sent, per recipient, in order. Runs of a
 * columnar message (`compute`, `in-memory`, `free`, `lost`) to one recipient
 * merge into one message, which keeps the hot path to a handful of objects
 * per batch.
 */
import type { ComputeMsg } from '../protocol/messages.ts';

type Columnar = 'free' | 'lost';

interface InMemoryMsg {
  op: 'in-memory';
  keys: string[];
  holder: number[];
  addresses: string[];
}

interface KeysMsg {
  op: Columnar;
  keys: string[];
}

export class Outbox {
  private byRecipient = new Map<string, object[]>();

  push(to: string, msg: object): void {
    const list = this.byRecipient.get(to);
    if (list) list.push(msg);
    else this.byRecipient.set(to, [msg]);
  }

  key(to: string, op: Columnar, key: string): void {
    let list = this.byRecipient.get(to);
    if (!list) {
      list = [];
      this.byRecipient.set(to, list);
    }
    const last = list[list.length - 1] as Partial<KeysMsg> | undefined;
    if (last && last.op === op && last.keys) last.keys.push(key);
    else list.push({ op, keys: [key] });
  }

  /** Tells a client a key is in memory at `address` (merged into one message per run). */
  inMemory(to: string, key: string, address: string): void {
    let list = this.byRecipient.get(to);
    if (!list) {
      list = [];
      this.byRecipient.set(to, list);
    }
    let last = list[list.length - 1] as InMemoryMsg | undefined;
    if (!last || last.op !== 'in-memory') {
      last = { op: 'in-memory', keys: [], holder: [], addresses: [] };
      list.push(last);
    }
    let i = last.addresses.indexOf(address);
    if (i < 0) i = last.addresses.push(address) - 1;
    last.keys.push(key);
    last.holder.push(i);
  }

  /** The compute message to append tasks to: the recipient's last message if it is one. */
  computeBatch(to: string): ComputeMsg {
    let list = this.byRecipient.get(to);
    if (!list) {
      list = [];
      this.byRecipient.set(to, list);
    }
    const last = list[list.length - 1] as Partial<ComputeMsg> | undefined;
    if (last && last.op === 'compute') return last as ComputeMsg;
    const batch: ComputeMsg = { op: 'compute', keys: [], runs: [], fns: [], args: [], orders: [], priorities: [], depCounts: [], deps: [], who: [], sizes: [], resources: [] };
    list.push(batch);
    return batch;
  }

  get empty(): boolean {
    return this.byRecipient.size === 0;
  }

  drain(): Map<string, object[]> {
    const out = this.byRecipient;
    this.byRecipient = new Map();
    return out;
  }
}
