/**
 * Sending graphs to the scheduler: building them a part at a time, giving
 * the wanted keys their tickets, and marking their records accepted (or
 * failed) once the scheduler answers.
 */
import { GraphError } from '../errors.ts';
import type { ClientToScheduler, SchedulerToClient } from '../protocol/messages.ts';
import { GraphBuilder, graphEntries, type Graph, type GraphMap } from './graph.ts';
import type { KeyBook, KeyState } from './keys.ts';

/** What sending graphs needs of the client. */
export interface SubmitLink {
  readonly book: KeyBook;
  /** A request to the scheduler (fails at once while the connection is lost). */
  ask(make: (id: number) => ClientToScheduler): Promise<SchedulerToClient>;
  /** Sends what the connection has queued now, not at the end of this turn. */
  flush(): void;
  closed(): Error | null;
}

/** A graph of more tasks than this may go in parts (see sendGraph): this many first, then PART at a time. */
const FIRST_PART = 1_024;
const PART = 1_024;

export class GraphSender {
  constructor(private readonly link: SubmitLink) {}

  /**
   * Builds and sends a graph; `keys` are the wanted ones (default: its
   * outputs). With `hold`, records for them are held before anything is
   * sent, and returned in the order of `keys`.
   */
  submitGraph(graph: Graph | GraphMap, keys: string[] | undefined, hold: boolean): { keys: string[]; states: KeyState[] | null; sent: Promise<void> } {
    const book = this.link.book;
    const { keys: all, defAt } = graphEntries(graph);
    const add = (b: GraphBuilder, i: number): void => {
      const key = all[i] as string;
      const def = defAt(i);
      if (!def || (typeof def.fn !== 'string' && typeof def.fn !== 'function')) throw new GraphError(`graph entry ${key} needs a fn (a "module#export" string or a function)`, [key]);
      b.add(def.fn, def.args ?? [], def, key);
    };
    if (!keys) {
      // The outputs are known only once every task is read: one message.
      const b = new GraphBuilder();
      for (let i = 0; i < all.length; i++) add(b, i);
      const used = b.depKeys();
      const wants: number[] = [];
      const out: string[] = [];
      all.forEach((k, i) => {
        if (!used.has(k)) {
          wants.push(i);
          out.push(k);
        }
      });
      const states = hold ? out.map((k) => book.hold(k)) : null;
      return { keys: out, states, sent: this.send(b, wants, []) };
    }
    // Which tasks are wanted; keys not in the graph are existing ones.
    let wanted: Uint8Array | null = null;
    const existing: string[] = [];
    let same = keys.length === all.length;
    for (let i = 0; same && i < keys.length; i++) same = keys[i] === all[i];
    let indexOf: Map<string, number> | null = null;
    const index = (): Map<string, number> => {
      if (!indexOf) {
        indexOf = new Map<string, number>();
        for (let j = 0; j < all.length; j++) indexOf.set(all[j] as string, j);
      }
      return indexOf;
    };
    if (!same) {
      wanted = new Uint8Array(all.length);
      const at = index();
      for (const k of keys) {
        const j = at.get(k);
        if (j === undefined) existing.push(k);
        else wanted[j] = 1;
      }
    }
    /** Whether task i depends on a task later in the graph (then the graph cannot go in parts from there). */
    const dependsAhead = (b: GraphBuilder, i: number): boolean => {
      const at = index();
      for (const d of b.lastDepKeys()) if ((at.get(d) ?? -1) > i) return true;
      return false;
    };
    // When the keys asked line up with the graph's tasks, each is held as its
    // task is built (before its part is sent), so the first part leaves
    // without waiting for a record per key of the whole graph.
    const lazy = hold && same;
    const states = hold ? (lazy ? new Array<KeyState>(keys.length) : keys.map((k) => book.hold(k))) : null;
    const stateAt = lazy && states ? (i: number) => states[i] : undefined;
    const build = lazy && states
      ? (b: GraphBuilder, i: number): void => {
          add(b, i);
          states[i] = book.hold(all[i] as string);
        }
      : add;
    try {
      return { keys, states, sent: this.sendGraph(all.length, build, wanted, existing, stateAt, dependsAhead) };
    } catch (err) {
      if (states) for (const ks of states) if (ks) book.release(ks);
      throw err;
    }
  }

  /**
   * Builds tasks `0 .. count-1` with `add` and sends them; `wanted` marks the
   * tasks to hold futures for (null: all), `wantKeys` are existing keys wanted too.
   *
   * A large graph goes in parts as it is built, like Dask's
   * `map(batch_size=)`: the cluster starts on the first tasks while the
   * client builds, and the scheduler reads, the rest, and no part is so
   * large that reading it stalls the scheduler. Every part but the last says
   * `more`: the scheduler holds its tasks until the last part, so a task not
   * wanted, whose dependents come in a later part, is not dropped. From the
   * first task that depends on a task later in the graph (`dependsAhead`),
   * the rest goes as one message. Each part is validated on its own: if one
   * is rejected, the promise rejects, and the caller releases the tasks of
   * the parts already accepted.
   */
  sendGraph(count: number, add: (b: GraphBuilder, i: number) => void, wanted: Uint8Array | null, wantKeys: string[], stateAt?: (i: number) => KeyState | undefined, dependsAhead?: (b: GraphBuilder, i: number) => boolean): Promise<void> {
    const sends: Promise<void>[] = [];
    let b = new GraphBuilder();
    let start = 0;
    let streaming = count > FIRST_PART;
    let partSize = FIRST_PART;
    const wantsOf = (from: number, to: number): number[] => {
      const wants: number[] = [];
      for (let i = from; i < to; i++) if (!wanted || wanted[i]) wants.push(i - from);
      return wants;
    };
    const sentKeys: string[][] = [];
    try {
      for (let i = 0; i < count; i++) {
        add(b, i);
        if (!streaming) continue;
        if (b.lastDeps > 0 && (!dependsAhead || dependsAhead(b, i))) streaming = false;
        else if (b.size >= partSize && i < count - 1) {
          sends.push(this.send(b, wantsOf(start, i + 1), [], start, stateAt, true));
          sentKeys.push(b.keys);
          // Out now, not at the end of this turn: the scheduler reads it while the next part is built.
          this.link.flush();
          b = new GraphBuilder();
          start = i + 1;
          partSize = PART;
        }
      }
    } catch (err) {
      // A task that cannot be built (a bad entry, an inline function using an
      // outer variable, arguments msgpack cannot encode) fails the call; the
      // parts already sent are released again, except keys held elsewhere.
      for (const p of sends) p.catch(() => {});
      // A last, empty part: the scheduler lets go of what it held for the parts sent.
      if (sends.length > 0) this.send(new GraphBuilder(), []).catch(() => {});
      for (const keys of sentKeys) this.link.book.releaseSent(keys);
      throw err;
    }
    sends.push(this.send(b, wantsOf(start, count), wantKeys, start, stateAt));
    return sends.length === 1 ? (sends[0] as Promise<void>) : Promise.all(sends).then(() => undefined);
  }

  /**
   * Sends a graph message; marks its wanted keys' records accepted, or fails
   * them if it is rejected. `stateAt`, when given, finds the record of task
   * `offset + i` without a lookup by key.
   */
  async send(b: GraphBuilder, wants: number[], wantKeys: string[] = [], offset = 0, stateAt?: (i: number) => KeyState | undefined, more = false): Promise<void> {
    const closed = this.link.closed();
    if (closed) throw closed;
    // Keys the wire cannot carry fail here, like a graph the scheduler rejects.
    const problem = b.keyProblem();
    const book = this.link.book;
    const stateOf = (i: number): KeyState | undefined => (stateAt ? stateAt(offset + i) : book.get(b.keys[i] as string));
    const states: (KeyState | undefined)[] = new Array(wants.length);
    const tickets = this.ticketsFor(wants, stateOf, states);
    const reply = problem ? { op: 'graph-rejected' as const, error: { name: 'GraphError', message: problem.message }, keys: problem.keys } : await this.link.ask((id) => b.build(id, wants, wantKeys, tickets, more));
    this.settleSent(wants, stateOf, states, reply.op === 'graph-rejected' ? new GraphError(reply.error.message, reply.keys) : null);
  }

  /*
   * The loops over a part's keys live in plain methods of their own, not in
   * the async `send`: V8 then optimizes them as small functions instead of
   * recompiling the whole async body (its awaits and closures included)
   * once a large graph makes the loops hot.
   */

  /**
   * The wanted tasks' records (into `states`) and their tickets. A key with
   * no record yet (the futures of `compute` and `map` come after) is told
   * about by key, and its record is looked up again once the reply is in.
   */
  private ticketsFor(wants: readonly number[], stateOf: (i: number) => KeyState | undefined, states: (KeyState | undefined)[]): Float64Array<ArrayBuffer> {
    const book = this.link.book;
    const tickets = new Float64Array(wants.length);
    for (let j = 0; j < wants.length; j++) {
      const ks = stateOf(wants[j] as number);
      states[j] = ks;
      // Cancelled, lost (the cluster restarted, the connection was lost) and submitted again: it is pending again, and held.
      if (ks?.status === 'cancelled' || ks?.status === 'lost') {
        ks.status = 'pending';
        ks.error = null;
        ks.held = true;
      }
      tickets[j] = ks ? book.ticketOf(ks) : -1;
    }
    return tickets;
  }

  /** Marks a sent part's wanted records accepted, or fails them with `rejected` (and throws it). */
  private settleSent(wants: readonly number[], stateOf: (i: number) => KeyState | undefined, states: (KeyState | undefined)[], rejected: GraphError | null): void {
    for (let j = 0; j < wants.length; j++) states[j] ??= stateOf(wants[j] as number);
    if (rejected) {
      for (const ks of states) if (ks?.accepted === false) this.link.book.settleState(ks, 'error', rejected);
      throw rejected;
    }
    for (const ks of states) if (ks) ks.accepted = true;
  }
}
