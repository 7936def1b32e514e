/**
 * Messages the state machine wants sent, per recipient, in order. Runs of a
 * columnar message (`compute`, `in-memory`, `free`, `lost`) to one recipient
 * merge into one message, which keeps the hot path to a handful of objects
 * per batch.
 */
import type { ComputeMsg } from '../protocol/messages.ts';
import { ByteWriter } from '../protocol/simple-codec.ts';
import { objectList } from '../util/lists.ts';

type Columnar = 'free' | 'lost';

interface InMemoryMsg {
  op: 'in-memory';
  keys: string[];
  holder: number[];
  tickets: number[];
  ticketHolder: number[];
  addresses: string[];
}

interface EventsMsg {
  op: 'events';
  topics: string[];
  data: Uint8Array[];
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
    const list = this.listFor(to);
    const last = list[list.length - 1] as Partial<KeysMsg> | undefined;
    if (last && last.op === op && last.keys) last.keys.push(key);
    else list.push({ op, keys: [key] });
  }

  /**
   * Tells a client a key is in memory at `address`, by its ticket when the
   * client gave one (>= 0), else by key (merged into one message per run).
   */
  inMemory(to: string, key: string, ticket: number, address: string): void {
    const list = this.listFor(to);
    let last = list[list.length - 1] as InMemoryMsg | undefined;
    if (!last || last.op !== 'in-memory') {
      last = { op: 'in-memory', keys: objectList<string>(), holder: [], tickets: [], ticketHolder: [], addresses: [] };
      list.push(last);
    }
    let i = last.addresses.indexOf(address);
    if (i < 0) i = last.addresses.push(address) - 1;
    if (ticket >= 0) {
      last.tickets.push(ticket);
      last.ticketHolder.push(i);
    } else {
      last.keys.push(key);
      last.holder.push(i);
    }
  }

  /** A task event for a client, merged into its last message when that is an `events` one. */
  event(to: string, topic: string, data: Uint8Array): void {
    const list = this.listFor(to);
    const last = list[list.length - 1] as Partial<EventsMsg> | undefined;
    if (last && last.op === 'events' && last.topics && last.data) {
      last.topics.push(topic);
      last.data.push(data);
    } else list.push({ op: 'events', topics: [topic], data: [data] } satisfies EventsMsg);
  }

  /** The compute message to append tasks to: the recipient's last message if it is one. */
  computeBatch(to: string): ComputeBuilder {
    const list = this.listFor(to);
    const last = list[list.length - 1];
    if (last instanceof ComputeBuilder) return last;
    const batch = new ComputeBuilder();
    list.push(batch);
    return batch;
  }

  /** The recipient's messages so far (a new list for a new recipient). */
  private listFor(to: string): object[] {
    let list = this.byRecipient.get(to);
    if (!list) {
      list = [];
      this.byRecipient.set(to, list);
    }
    return list;
  }

  get empty(): boolean {
    return this.byRecipient.size === 0;
  }

  drain(): Map<string, object[]> {
    const out = this.byRecipient;
    this.byRecipient = new Map();
    for (const list of out.values()) {
      for (let i = 0; i < list.length; i++) {
        const m = list[i];
        if (m instanceof ComputeBuilder) list[i] = m.message();
        else if ((m as Partial<InMemoryMsg>).op === 'in-memory') {
          const im = m as InMemoryMsg;
          list[i] = { op: 'in-memory', keys: im.keys, holder: Uint32Array.from(im.holder), tickets: Float64Array.from(im.tickets), ticketHolder: Uint32Array.from(im.ticketHolder), addresses: im.addresses };
        }
      }
    }
    return out;
  }
}

/** A compute message being built: the columns, and every task's arguments copied into one buffer. */
export class ComputeBuilder {
  readonly keys = objectList<string>();
  readonly runs: number[] = [];
  readonly fns: number[] = [];
  readonly argEnds: number[] = [];
  readonly orders: number[] = [];
  readonly priorities: number[] = [];
  readonly depCounts: number[] = [];
  readonly deps = objectList<string>();
  readonly who = objectList<string[]>();
  readonly sizes: number[] = [];
  readonly ephemeral: number[] = [];
  readonly resources: ComputeMsg['resources'] = [];
  private readonly args = new ByteWriter(1024);

  addArgs(buf: Uint8Array, start: number, end: number): void {
    this.args.bytes(buf.subarray(start, end));
    this.argEnds.push(this.args.pos);
  }

  message(): ComputeMsg {
    const a = this.args;
    // A Buffer, so msgpack carries it as plain binary.
    const args = Buffer.from(a.buf.buffer, a.buf.byteOffset, a.pos);
    return {
      op: 'compute',
      keys: this.keys,
      runs: Float64Array.from(this.runs),
      fns: Uint32Array.from(this.fns),
      args,
      argEnds: Uint32Array.from(this.argEnds),
      orders: Float64Array.from(this.orders),
      priorities: Float64Array.from(this.priorities),
      depCounts: Uint32Array.from(this.depCounts),
      deps: this.deps,
      who: this.who,
      sizes: Float64Array.from(this.sizes),
      ...(this.ephemeral.length > 0 ? { ephemeral: Uint32Array.from(this.ephemeral) } : {}),
      resources: this.resources,
    };
  }
}
