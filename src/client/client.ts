/**
 * The weft client: submits work to a scheduler and gets results from the
 * workers that hold them (never through the scheduler).
 *
 *   const client = await Client.connect('ws://127.0.0.1:8786');
 *   const x = client.submit('./tasks.ts#inc', 1);
 *   const y = client.submit((a: number) => a * 10, x);
 *   console.log(await y); // 20
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Connection } from '../protocol/connection.ts';
import { decode, encodeOwned } from '../protocol/codec.ts';
import { connect } from '../protocol/handshake.ts';
import { messageSchemas, keyFits, MAX_TOPIC, type ClientToScheduler, type SchedulerToClient, type WorkerMetrics, type WorkerSummary, type WorkerToPeer } from '../protocol/messages.ts';
import * as ops from './cluster-ops.ts';
import { fetchValues, GATHER_CHUNK, type Fetcher } from './fetch.ts';
import type { SyncCall } from './cluster-ops.ts';

export type { SyncCall } from './cluster-ops.ts';
import { PeerPool, type PeerRequest } from '../protocol/peers.ts';
import { makeActor, type ActorHandle } from './actor.ts';
import type { TlsOptions } from '../protocol/tls.ts';
import type { Snapshot } from '../scheduler/dashboard/snapshot.ts';
import { Requests } from '../protocol/requests.ts';
import { CancelledError, ConnectionClosedError, GraphError, remoteError, WeftError } from '../errors.ts';
import { createLogger, type Logger } from '../util/log.ts';
import { Future, type FutureHost, type FutureStatus } from './future.ts';
import { fnLabel, GraphBuilder, graphEntries, type Graph, type GraphMap, type TaskFn, type TaskOptions } from './graph.ts';

export interface ClientOptions {
  /** Shared secret, when the scheduler requires one (default: WEFT_TOKEN). */
  token?: string | undefined;
  log?: Logger;
  /** How long to wait for the scheduler to answer the handshake. */
  timeoutMs?: number;
  /**
   * For a wss:// cluster (PEM contents): the CA that signed the scheduler's
   * and workers' certificates (default: the system's), and this client's
   * certificate and key when they require one.
   */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer };
  /**
   * The client pings the scheduler every few seconds; when it has heard
   * nothing for this long (a scheduler stopped, a network cut), it gives up:
   * its futures fail with ConnectionClosedError (default 30,000; 0: never).
   */
  schedulerTimeoutMs?: number;
  /**
   * A worker asked for results that sends nothing back for this long (stopped,
   * cut off) is given up for that request: the results come from another
   * holder, or from the scheduler's recomputation (default 30,000).
   */
  gatherTimeoutMs?: number;
  /**
   * Once the scheduler connection is lost (futures fail with
   * ConnectionClosedError), the client tries to connect again for this long,
   * so that new work goes to the scheduler when it returns (default 60,000;
   * 0: never).
   */
  reconnectMs?: number;
}

export interface SubmitOptions extends TaskOptions {
  /** The task's key. Default: the function's name and a hash of the call. */
  key?: string;
  /** false: a fresh key per call, for functions whose result differs each time. Default true. */
  pure?: boolean;
}

export interface ComputeOptions {
  /** Keys to return futures for. Default: the graph's outputs (keys nothing else depends on). */
  keys?: string[];
}

/** One wait on many keys: a counter, not a promise per key. */
interface Waiter {
  left: number;
  settled: boolean;
  resolve: () => void;
  reject: (e: Error) => void;
}

interface KeyState {
  readonly key: string;
  /** The record in \`keys\` for its key (so releasing needs no lookup to check). */
  held: boolean;
  /** Some accepted graph holds this key (a later rejected one must not fail it). */
  accepted: boolean;
  status: FutureStatus;
  error: Error | null;
  /** A worker that holds the result, as the scheduler last said. */
  where: string | null;
  refs: number;
  /** Who waits for this key: almost always one waiter, so no array until a second. */
  waiter: Waiter | null;
  moreWaiters: Waiter[] | null;
  /** The scheduler's handle for this record (see ticketOf); -1 until the key is first sent as wanted. */
  ticket: number;
}

/**
 * A ticket is a slot of `Client.byTicket` plus a sequence number times
 * TICKET_SLOTS, so that a notice about a record already released (its slot
 * reused since) matches no record.
 */
const TICKET_SLOTS = 2 ** 24;
const TICKET_SEQS = 2 ** 29;

/** A graph of more tasks than this may go in parts (see sendGraph): this many first, then PART at a time. */
const FIRST_PART = 1_024;
const PART = 1_024;
/** Keys per release message. */
const RELEASE_CHUNK = 16_384;

export class Client implements FutureHost {
  private keys = new Map<string, KeyState>();
  /** Held records by ticket slot, and the free slots. */
  private byTicket: (KeyState | null)[] = [];
  private freeTickets: number[] = [];
  private ticketSeq = 0;
  private requests = new Requests<SchedulerToClient>();
  private peers: PeerPool;
  private pendingRelease: string[] = [];
  private releaseScheduled = false;
  private closedError: Error | null = null;
  /** Handlers of task-event topics this client subscribed to. */
  private handlers = new Map<string, Set<(data: unknown) => void>>();

  /** close() was called: the connection is not made again. */
  private userClosed = false;

  /** What the cluster operations (cluster-ops.ts) send through. */
  private readonly link: ops.SchedulerLink = {
    ask: (make, urgent = false) => this.ask((id) => this.conn.send(make(id), urgent)),
    tell: (msg) => {
      if (!this.closedError) this.conn.send(msg);
    },
    requestWorker: (address, msg) => this.requestWorker(address, msg),
  };

  private constructor(
    readonly address: string,
    private conn: Connection<SchedulerToClient, ClientToScheduler>,
    private readonly token: string | undefined,
    private readonly log: Logger,
    private readonly tls: TlsOptions | null,
    private readonly schedulerTimeoutMs: number,
    private readonly gatherTimeoutMs: number,
    private readonly reconnectMs: number,
  ) {
    this.peers = new PeerPool('client', token, undefined, tls);
    this.wire(conn);
  }

  /** A request to the scheduler; fails at once while the connection is lost (a message sent then would go nowhere). */
  private ask(make: (id: number) => void): Promise<SchedulerToClient> {
    if (this.closedError) return Promise.reject(this.closedError);
    return this.requests.start(make);
  }

  private wire(conn: Connection<SchedulerToClient, ClientToScheduler>): void {
    conn.onMessages((msgs) => {
      for (const m of msgs) this.onMessage(m);
    });
    conn.onClose((code, reason) => this.onClosed(`scheduler connection closed (${code}${reason ? `: ${reason}` : ''})`));
    if (this.schedulerTimeoutMs > 0) this.watchScheduler(this.schedulerTimeoutMs);
  }

  /**
   * The scheduler connection was lost (not closed by this client): tries to
   * connect again every second for `reconnectMs`. Futures of before stay
   * failed (their results went with the scheduler's record of this client);
   * topics are subscribed again, and new work goes to the new connection.
   */
  private async reconnect(): Promise<void> {
    const deadline = Date.now() + this.reconnectMs;
    while (!this.userClosed && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      if (this.userClosed) return;
      let conn: Connection<SchedulerToClient, ClientToScheduler>;
      try {
        conn = await connect<SchedulerToClient, ClientToScheduler>(this.address, { role: 'client', token: this.token, schema: messageSchemas().schedulerToClient, timeoutMs: 5000, label: 'scheduler', tls: this.tls });
      } catch {
        continue;
      }
      if (this.userClosed) return void conn.close(1000, 'client closing');
      this.conn = conn;
      for (const ks of this.keys.values()) {
        ks.held = false;
        if (ks.status === 'finished') ks.status = 'lost';
      }
      this.closedError = null;
      this.wire(conn);
      if (this.handlers.size > 0) conn.send({ op: 'subscribe', topics: [...this.handlers.keys()] });
      this.log.info('connected to the scheduler again');
      return;
    }
  }

  /** Pings the scheduler; silent for `timeoutMs`, the connection is cut (futures fail with ConnectionClosedError). */
  private watchScheduler(timeoutMs: number): void {
    let heard = Date.now();
    const every = Math.min(5000, Math.max(100, timeoutMs / 3));
    // This connection's watch: it ends with it (a new connection gets its own).
    const conn = this.conn;
    const timer = setInterval(() => {
      if (this.closedError || this.conn !== conn) return void clearInterval(timer);
      if (Date.now() - heard > timeoutMs) {
        clearInterval(timer);
        this.log.error({ silentMs: Date.now() - heard }, 'the scheduler has not answered: giving up on it');
        this.onClosed(`the scheduler did not answer for ${timeoutMs / 1000} s`);
        conn.ws.terminate();
        return;
      }
      this.ask((id) => this.conn.send({ op: 'ping', id })).then(
        () => (heard = Date.now()),
        () => {},
      );
    }, every);
    timer.unref();
  }

  static async connect(address: string, opts: ClientOptions = {}): Promise<Client> {
    const token = opts.token ?? process.env['WEFT_TOKEN'];
    const buf = (v: string | Buffer | undefined): Buffer | undefined => (v === undefined ? undefined : Buffer.isBuffer(v) ? v : Buffer.from(v));
    const t = opts.tls;
    const tls: TlsOptions | null = t ? { ...(t.ca ? { ca: buf(t.ca) as Buffer } : {}), ...(t.cert && t.key ? { cert: buf(t.cert) as Buffer, key: buf(t.key) as Buffer } : {}) } : null;
    const conn = await connect<SchedulerToClient, ClientToScheduler>(address, { role: 'client', token, schema: messageSchemas().schedulerToClient, timeoutMs: opts.timeoutMs ?? 10_000, label: 'scheduler', tls });
    return new Client(address, conn, token, opts.log ?? createLogger('weft-client', 'warn'), tls, opts.schedulerTimeoutMs ?? 30_000, opts.gatherTimeoutMs ?? 30_000, opts.reconnectMs ?? 60_000);
  }

  // ------------------------------------------------------------------ submitting

  /** Runs `fn(...args)` on the cluster. Futures among the args (anywhere in arrays and objects) become their results. */
  submit<T = unknown>(fn: TaskFn, ...args: unknown[]): Future<T> {
    return this.submitWith<T>({}, fn, ...args);
  }

  /** `submit` with options: key, priority, retries, resources, workers, pure. */
  submitWith<T = unknown>(opts: SubmitOptions, fn: TaskFn, ...args: unknown[]): Future<T> {
    const b = new GraphBuilder();
    const key = b.add(fn, args, opts, opts.key ?? (opts.pure === false ? `${fnLabel(fn)}-${randomUUID()}` : undefined));
    const future = new Future<T>(key, this);
    this.send(b, [0]).catch(() => {});
    return future;
  }

  /** One task per item: `fn(item)`. A long list goes to the scheduler in parts (see sendGraph). */
  map<T = unknown>(fn: TaskFn, items: Iterable<unknown>, opts: Omit<SubmitOptions, 'key'> = {}): Future<T>[] {
    const list = Array.isArray(items) ? (items as unknown[]) : [...items];
    const keys: string[] = new Array(list.length);
    const sent = this.sendGraph(list.length, (b, i) => {
      keys[i] = b.add(fn, [list[i]], opts, opts.pure === false ? `${fnLabel(fn)}-${randomUUID()}` : undefined);
    }, null, []);
    const futures = keys.map((k) => new Future<T>(k, this));
    sent.catch(() => {});
    return futures;
  }

  /**
   * Submits a whole graph: `{ key: { fn, args, ...options } }`, where args
   * refer to other keys with `ref('key')` or to futures. Resolves with
   * futures for `opts.keys` (default: the graph's outputs) once the scheduler
   * has accepted the graph; rejects with GraphError if it is invalid.
   */
  async compute(graph: Graph | GraphMap, opts: ComputeOptions = {}): Promise<Record<string, Future>> {
    const sub = this.submitGraph(graph, opts.keys, false);
    const futures: Record<string, Future> = {};
    for (const k of sub.keys) futures[k] = new Future(k, this);
    try {
      await sub.sent;
    } catch (err) {
      for (const f of Object.values(futures)) f.release();
      throw err;
    }
    return futures;
  }

  /**
   * Computes a graph and returns values, like Dask's `client.get`: for a list
   * of keys, their values in that order; for one key, its value; with no
   * keys, the graph's outputs (keys nothing else depends on) by key. The
   * results are released on the cluster afterwards.
   */
  async get(graph: Graph | GraphMap, keys: string[]): Promise<unknown[]>;
  async get(graph: Graph | GraphMap, key: string): Promise<unknown>;
  async get(graph: Graph | GraphMap): Promise<Record<string, unknown>>;
  async get(graph: Graph | GraphMap, keys?: string[] | string): Promise<unknown> {
    const sub = this.submitGraph(graph, typeof keys === 'string' ? [keys] : keys, true);
    const states = sub.states as KeyState[];
    try {
      await sub.sent;
      const values = await this.waitAndFetch(states);
      if (typeof keys === 'string') return values[0];
      if (keys) return values;
      const out: Record<string, unknown> = {};
      sub.keys.forEach((k, i) => (out[k] = values[i]));
      return out;
    } finally {
      // Released on the next turn: the caller has its values without waiting
      // for the bookkeeping of many keys. A key held again meanwhile stays held.
      setImmediate(() => {
        for (const ks of states) this.releaseState(ks);
      });
    }
  }

  /**
   * Builds and sends a graph; `keys` are the wanted ones (default: its
   * outputs). With `hold`, records for them are held before anything is
   * sent, and returned in the order of `keys`.
   */
  private submitGraph(graph: Graph | GraphMap, keys: string[] | undefined, hold: boolean): { keys: string[]; states: KeyState[] | null; sent: Promise<void> } {
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
      const states = hold ? out.map((k) => this.hold(k)) : null;
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
    const states = hold ? (lazy ? new Array<KeyState>(keys.length) : keys.map((k) => this.hold(k))) : null;
    const stateAt = lazy && states ? (i: number) => states[i] : undefined;
    const build = lazy && states
      ? (b: GraphBuilder, i: number): void => {
          add(b, i);
          states[i] = this.hold(all[i] as string);
        }
      : add;
    try {
      return { keys, states, sent: this.sendGraph(all.length, build, wanted, existing, stateAt, dependsAhead) };
    } catch (err) {
      if (states) for (const ks of states) if (ks) this.releaseState(ks);
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
  private sendGraph(count: number, add: (b: GraphBuilder, i: number) => void, wanted: Uint8Array | null, wantKeys: string[], stateAt?: (i: number) => KeyState | undefined, dependsAhead?: (b: GraphBuilder, i: number) => boolean): Promise<void> {
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
          this.conn.flush();
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
      for (const keys of sentKeys) for (const k of keys) this.pendingRelease.push(k);
      this.scheduleReleases();
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
  private async send(b: GraphBuilder, wants: number[], wantKeys: string[] = [], offset = 0, stateAt?: (i: number) => KeyState | undefined, more = false): Promise<void> {
    if (this.closedError) throw this.closedError;
    // Keys the wire cannot carry fail here, like a graph the scheduler rejects.
    const problem = b.keyProblem();
    const stateOf = (i: number): KeyState | undefined => (stateAt ? stateAt(offset + i) : this.keys.get(b.keys[i] as string));
    const states: (KeyState | undefined)[] = new Array(wants.length);
    const tickets = this.ticketsFor(wants, stateOf, states);
    const reply = problem ? { op: 'graph-rejected' as const, error: { name: 'GraphError', message: problem.message }, keys: problem.keys } : await this.ask((id) => this.conn.send(b.build(id, wants, wantKeys, tickets, more)));
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
      tickets[j] = ks ? this.ticketOf(ks) : -1;
    }
    return tickets;
  }

  /** Marks a sent part's wanted records accepted, or fails them with `rejected` (and throws it). */
  private settleSent(wants: readonly number[], stateOf: (i: number) => KeyState | undefined, states: (KeyState | undefined)[], rejected: GraphError | null): void {
    for (let j = 0; j < wants.length; j++) states[j] ??= stateOf(wants[j] as number);
    if (rejected) {
      for (const ks of states) if (ks?.accepted === false) this.settleState(ks, 'error', rejected);
      throw rejected;
    }
    for (const ks of states) if (ks) ks.accepted = true;
  }

  // ------------------------------------------------------------------ results

  /** Waits for the futures and fetches their values, in order. Rejects with the first error. */
  async gather<T = unknown>(futures: readonly Future<T>[]): Promise<T[]> {
    const states = futures.map((f) => this.keys.get(f.key) ?? cancelledState(f.key));
    return (await this.waitAndFetch(states)) as T[];
  }

  /**
   * Waits for the keys and fetches their values, in order; rejects with the
   * first error. Many keys are fetched a chunk at a time, each as soon as it
   * is all finished, so that moving the first results overlaps computing the
   * rest instead of all of it waiting for the last task.
   */
  private async waitAndFetch(states: readonly KeyState[]): Promise<unknown[]> {
    // About an eighth at a time (at least 16 keys, at most GATHER_CHUNK): a few large values start moving as soon as the first are made.
    const size = Math.min(GATHER_CHUNK, Math.max(16, Math.ceil(states.length / 8)));
    if (states.length <= size) {
      await this.waitStates(states);
      return this.fetchValues(states);
    }
    const chunks: KeyState[][] = [];
    for (let c = 0; c < states.length; c += size) chunks.push(states.slice(c, c + size));
    // One waiter per chunk (no key is waited on twice); any chunk's error fails the call at once.
    const waits = chunks.map((chunk) => this.waitStates(chunk));
    const failed = new Promise<never>((_, reject) => {
      for (const w of waits) w.catch(reject);
    });
    const fetches: Promise<unknown[]>[] = [];
    try {
      for (let i = 0; i < chunks.length; i++) {
        await Promise.race([waits[i], failed]);
        fetches.push(this.fetchValues(chunks[i] as KeyState[]));
      }
      const parts = await Promise.race([Promise.all(fetches), failed]);
      return ([] as unknown[]).concat(...parts);
    } catch (err) {
      for (const f of fetches) f.catch(() => {});
      throw err;
    }
  }

  /**
   * Sends values to workers (round-robin, or the `workers` given) and returns
   * futures for them, to use as arguments without sending them again.
   */
  async scatter<T = unknown>(values: readonly T[], opts: { workers?: string[] } = {}): Promise<Future<T>[]> {
    const targets = opts.workers ?? (await this.workers()).map((w) => w.address);
    if (targets.length === 0) throw new WeftError('scatter needs at least one worker, and the cluster has none');
    const blobs = values.map((v) => encodeOwned(v));
    const keys = blobs.map((b) => `scatter-${createHash('sha1').update(b).digest('hex').slice(0, 20)}`);
    const futures = keys.map((k) => new Future<T>(k, this));
    const perWorker = new Map<string, number[]>();
    keys.forEach((_, i) => {
      const w = targets[i % targets.length] as string;
      const list = perWorker.get(w);
      if (list) list.push(i);
      else perWorker.set(w, [i]);
    });
    await Promise.all(
      [...perWorker].map(async ([address, idx]) => {
        const reply = await this.peers.request(address, { op: 'put', keys: idx.map((i) => keys[i] as string), blobs: idx.map((i) => blobs[i] as Uint8Array) });
        if (reply.op !== 'put-ok') throw new WeftError(`unexpected reply to put: ${reply.op}`);
        if (reply.refused?.length) throw new WeftError(`worker ${address} already holds ${reply.refused.slice(0, 5).join(', ')}: a scatter never replaces a result; use new keys`);
        const r = await this.ask((id) => this.conn.send({ op: 'scattered', id, keys: idx.map((i) => keys[i] as string), nbytes: reply.nbytes, worker: address }));
        if (r.op === 'scattered-ok' && r.error) throw new WeftError(`scatter to ${address} failed: ${r.error}`);
      }),
    );
    for (const k of keys) {
      const ks = this.keys.get(k);
      if (ks) ks.accepted = true;
      this.settle(k, 'finished', null);
    }
    return futures;
  }

  /**
   * A future for a key someone already submitted (this client or another);
   * it errs if the scheduler does not know the key. Not async: a Future is
   * thenable, so a promise of one would resolve to its value instead.
   */
  futureOf<T = unknown>(key: string): Future<T> {
    const f = new Future<T>(key, this);
    this.requests
      .start((id) => this.conn.send({ op: 'want', id, keys: [key] }))
      .then((reply) => {
        if (reply.op === 'want-reply' && reply.missing.length > 0) this.settle(key, 'error', new WeftError(`the scheduler does not know key ${key}`));
      })
      .catch(() => {});
    return f;
  }

  /** Cancels futures: their tasks stop unless something else needs them. */
  async cancel(futures: readonly Future[]): Promise<void> {
    await this.cancelKeys(futures.map((f) => f.key));
  }

  /**
   * Calls `handler` with every event a task publishes on `topic` from now
   * on (see `taskContext().emit`); returns a function that unsubscribes.
   * Events from one task arrive in the order it sent them, and before the
   * task's result is reported, so subscribing before submitting misses none.
   */
  subscribe(topic: string, handler: (data: unknown) => void): () => void {
    if (typeof topic !== 'string' || topic.length === 0 || topic.length > MAX_TOPIC) throw new WeftError(`a topic must be a string of 1 to ${MAX_TOPIC} characters`);
    if (this.closedError) throw this.closedError;
    let set = this.handlers.get(topic);
    if (!set) {
      set = new Set();
      this.handlers.set(topic, set);
      this.conn.send({ op: 'subscribe', topics: [topic] });
    }
    set.add(handler);
    return () => {
      const s = this.handlers.get(topic);
      if (!s?.delete(handler) || s.size > 0) return;
      this.handlers.delete(topic);
      if (!this.closedError) this.conn.send({ op: 'unsubscribe', topics: [topic] });
    };
  }

  /**
   * Names these futures' results so that they outlive this client (Dask's
   * datasets): any client gets them back with `getDataset` until
   * `unpublishDataset`. A name is published once.
   */
  async publishDataset(name: string, futures: readonly Future[]): Promise<void> {
    await ops.datasetRequest(this.link, (id) => ({ op: 'publish-dataset', id, name, keys: futures.map((f) => f.key) }));
  }

  /** Futures for a published dataset's results, in the order published. */
  async getDataset<T = unknown>(name: string): Promise<Future<T>[]> {
    const reply = await ops.datasetRequest(this.link, (id) => ({ op: 'get-dataset', id, name }));
    // An array of futures is safe to resolve with (an array is not thenable).
    return (reply.keys ?? []).map((k) => this.futureOf<T>(k));
  }

  /**
   * A call on a coordination primitive held by the scheduler (the
   * Semaphore, Lock, Event, Variable and Queue classes make them): its
   * answer, or a WeftError with the scheduler's reason.
   */
  sync(call: SyncCall): Promise<{ ok: boolean; value?: Uint8Array | undefined; key?: string | undefined; size?: number | undefined }> {
    return ops.sync(this.link, call);
  }

  /** A call on a primitive that gets no answer (a semaphore's lease refresh). */
  syncNotify(call: SyncCall): void {
    this.link.tell({ op: 'sync', id: 0, ...call });
  }

  /** How many workers the cluster's work wants now, for `targetDuration` seconds of work per thread (Dask's adaptive_target). */
  adaptiveTarget(targetDuration = 5): Promise<number> {
    return ops.adaptiveTarget(this.link, targetDuration);
  }

  /** A request to a worker's data port, answered by that worker (actors use it: client/actor.ts). */
  requestWorker(address: string, msg: PeerRequest): Promise<WorkerToPeer> {
    return this.peers.request(address, msg);
  }

  /**
   * Makes an actor (Dask's `actor=True`): `new Cls(...args)` on one worker,
   * kept there; its methods are called straight on that worker. `cls` is a
   * module export, as a task function is (`'./counter.ts#Counter'`).
   *
   *   const counter = await client.actor<Counter>('./counter.ts#Counter', 10);
   *   await counter.increment(); // 11, from the worker that holds it
   */
  actor<T extends object>(cls: string, ...args: unknown[]): Promise<ActorHandle<T>> {
    return makeActor<T>(this, cls, args);
  }

  /** The names of the published datasets. */
  async listDatasets(): Promise<string[]> {
    return (await ops.datasetRequest(this.link, (id) => ({ op: 'list-datasets', id }))).names ?? [];
  }

  /** Lets go of a dataset: its results go once no future needs them. */
  async unpublishDataset(name: string): Promise<void> {
    await ops.datasetRequest(this.link, (id) => ({ op: 'unpublish-dataset', id, name }));
  }

  /** The workers (data-server addresses) holding each future's result, by key; none while it is not in memory. */
  whoHas(futures: readonly Future[]): Promise<Record<string, string[]>> {
    return ops.whoHas(this.link, futures.map((f) => f.key));
  }

  /**
   * Lets these futures' tasks run to their end even once every future for
   * them is released and this client has gone (Dask's fire_and_forget): for
   * work done for its effects, a file written or a message sent.
   */
  fireAndForget(futures: readonly Future[]): void {
    const keys = futures.map((f) => f.key).filter(keyFits);
    if (keys.length > 0 && !this.closedError) this.conn.send({ op: 'fire-and-forget', keys });
  }

  /**
   * Copies of these futures' results on `n` workers in all (default: every
   * worker), as Dask's `replicate`: more workers can then read them without
   * a transfer, and a worker's loss costs no recomputation. Resolves once the
   * copies are made; throws naming any that could not be.
   */
  replicate(futures: readonly Future[], n = 10_000): Promise<void> {
    return ops.replicate(this.link, futures.map((f) => f.key), n);
  }

  /**
   * Retires workers by name (Dask's `retire_workers`): they take no new
   * tasks; once their running tasks end, the results only they hold are
   * copied to the other workers, then they shut down. Resolves with the
   * workers retired and what failed (an unknown name, no worker left to
   * take the data).
   */
  retireWorkers(names: readonly string[]): Promise<{ retired: string[]; failed: string[] }> {
    return ops.retireWorkers(this.link, names);
  }

  /**
   * Calls `fn(...args)` in every worker's process (Dask's `client.run`), for
   * setup, inspection or cleanup: a module reference (`'./setup.ts#init'`)
   * or a self-contained function. Resolves with what each returned, by
   * worker name; a failure anywhere rejects with a RunError naming the
   * worker, with its stack. It runs in the worker's main thread, not an
   * executor thread: a long call holds that worker up.
   */
  run<T = unknown>(fn: TaskFn, ...args: unknown[]): Promise<Record<string, T>> {
    return ops.run<T>(this.link, fn, args);
  }

  /**
   * Restarts the cluster's work (Dask's `restart`): every task and result
   * is dropped on the scheduler and the workers, whose executor threads are
   * replaced by fresh ones (ending any task stuck in a loop, and reloading
   * task modules); every client's futures are cancelled. Resolves once every
   * worker is done. The worker processes stay (restarting them needs the
   * nanny).
   */
  restart(): Promise<void> {
    return ops.restart(this.link);
  }

  /**
   * Runs `work` and writes a self-contained HTML report of what the cluster
   * did meanwhile to `path` (Dask's `performance_report`): the task stream,
   * progress per task group, tasks by state over time and the workers, as
   * the dashboard draws them (the latest 16,384 tasks that ended). Resolves
   * with what `work` returned; if it throws, the report is written and the
   * error rethrown. Needs the scheduler's dashboard (not `--no-dashboard`).
   */
  async performanceReport<T>(path: string, work: () => Promise<T> | T, opts: { title?: string } = {}): Promise<T> {
    const start = Date.now();
    let outcome: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      outcome = { ok: true, value: await work() };
    } catch (error) {
      outcome = { ok: false, error };
    }
    const end = Date.now();
    // Each task's report reached the scheduler (and its record) before its result was announced: nothing to wait for.
    const json = await ops.reportData(this.link, start);
    const { writeReport } = await import('./report.ts');
    await writeReport(path, { title: opts.title ?? 'weft performance report', start, end, snapshot: JSON.parse(json) as Snapshot });
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  }

  /** The workers in the cluster. */
  workers(): Promise<WorkerSummary[]> {
    return ops.workers(this.link);
  }

  /**
   * The scheduler process's figures: its longest event-loop stall since the
   * last `reset` (ms), its resident and heap memory, and the tasks it knows.
   * `gc`: it collects garbage first, where it runs with `--expose-gc`.
   */
  schedulerStats(opts: { reset?: boolean; gc?: boolean } = {}): Promise<{ maxStallMs: number; rss: number; heapUsed: number; tasks: number; taskRuns: number }> {
    return ops.schedulerStats(this.link, opts);
  }

  /** Counters from each worker (bytes moved, tasks run), keyed by worker address. */
  workerMetrics(): Promise<Record<string, WorkerMetrics>> {
    return ops.workerMetrics(this.link);
  }

  async close(): Promise<void> {
    this.userClosed = true;
    this.flushReleases();
    this.conn.close(1000, 'client closing');
    await this.peers.close();
    this.onClosed('client closed');
  }

  // ------------------------------------------------------------------ FutureHost

  keyStatus(key: string): FutureStatus {
    return this.keys.get(key)?.status ?? 'cancelled';
  }

  waitKey(key: string): Promise<void> {
    return this.waitKeys([key]);
  }

  /** Resolves when every key has finished; rejects with the first error. */
  waitKeys(keys: readonly string[]): Promise<void> {
    return this.waitStates(keys.map((k) => this.keys.get(k) ?? cancelledState(k)));
  }

  private waitStates(states: readonly KeyState[]): Promise<void> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const w: Waiter = { left: 0, settled: false, resolve, reject };
      for (const ks of states) {
        if (ks.status === 'finished') continue;
        if (ks.status === 'error' || ks.status === 'cancelled') return reject(ks.error ?? new CancelledError(`future ${ks.key} was cancelled or released`));
        w.left++;
        if (ks.waiter === null) ks.waiter = w;
        else (ks.moreWaiters ??= []).push(w);
      }
      if (w.left === 0) {
        w.settled = true;
        resolve();
      }
    });
  }

  async gatherOne(key: string): Promise<unknown> {
    const ks = this.keys.get(key) ?? cancelledState(key);
    return (await this.fetchValues([ks]))[0];
  }

  retain(key: string): void {
    this.hold(key);
  }

  /** One more reference to a key; its record. */
  private hold(key: string): KeyState {
    const ks = this.keys.get(key);
    if (ks) {
      ks.refs++;
      return ks;
    }
    const fresh: KeyState = { key, held: true, accepted: false, status: 'pending', error: null, where: null, refs: 1, waiter: null, moreWaiters: null, ticket: -1 };
    this.keys.set(key, fresh);
    return fresh;
  }

  releaseKey(key: string): void {
    const ks = this.keys.get(key);
    if (ks) this.releaseState(ks);
  }

  /** The record's ticket, given on first use (-1 when every slot is taken: then it goes by key). */
  private ticketOf(ks: KeyState): number {
    if (ks.ticket >= 0 || !ks.held) return ks.ticket;
    let slot = this.freeTickets.pop();
    if (slot === undefined) {
      if (this.byTicket.length >= TICKET_SLOTS) return -1;
      slot = this.byTicket.push(null) - 1;
    }
    this.byTicket[slot] = ks;
    this.ticketSeq = (this.ticketSeq + 1) % TICKET_SEQS;
    ks.ticket = this.ticketSeq * TICKET_SLOTS + slot;
    return ks.ticket;
  }

  /** Takes a record off the books (its ticket's slot is free again). */
  private forget(ks: KeyState): void {
    ks.held = false;
    this.keys.delete(ks.key);
    if (ks.ticket >= 0) {
      const slot = ks.ticket % TICKET_SLOTS;
      this.byTicket[slot] = null;
      this.freeTickets.push(slot);
      ks.ticket = -1;
    }
  }

  private releaseState(ks: KeyState): void {
    if (--ks.refs > 0 || !ks.held) return;
    this.forget(ks);
    this.pendingRelease.push(ks.key);
    this.scheduleReleases();
  }

  private scheduleReleases(): void {
    if (!this.releaseScheduled) {
      this.releaseScheduled = true;
      setImmediate(() => this.flushReleases());
    }
  }

  async cancelKeys(keys: string[]): Promise<void> {
    const toRelease: string[] = [];
    for (const key of keys) {
      const ks = this.keys.get(key);
      if (!ks) continue;
      this.forget(ks);
      if (ks.status === 'pending' || ks.status === 'lost') {
        ks.status = 'cancelled';
        ks.error = new CancelledError(`future ${key} was cancelled`);
        this.wake(ks, ks.error);
      }
      if (keyFits(key)) toRelease.push(key);
    }
    if (toRelease.length > 0 && !this.closedError) this.conn.send({ op: 'release', keys: toRelease });
  }

  // ------------------------------------------------------------------ internals

  private flushReleases(): void {
    this.releaseScheduled = false;
    if (this.pendingRelease.length === 0 || this.closedError) return;
    // A key held again since it was released (same work submitted again) stays
    // wanted; one the scheduler cannot have (refused for its length) is not sent.
    const keys = this.pendingRelease.filter((k) => !this.keys.has(k) && keyFits(k));
    this.pendingRelease = [];
    // In messages of RELEASE_CHUNK keys: the scheduler decodes and handles each in one turn, and a million at once would stall it.
    for (let i = 0; i < keys.length; i += RELEASE_CHUNK) this.conn.send({ op: 'release', keys: i === 0 && keys.length <= RELEASE_CHUNK ? keys : keys.slice(i, i + RELEASE_CHUNK) });
  }

  private settle(key: string, status: FutureStatus, error: Error | null): void {
    const ks = this.keys.get(key);
    if (ks) this.settleState(ks, status, error);
  }

  private settleState(ks: KeyState, status: FutureStatus, error: Error | null): void {
    ks.status = status;
    ks.error = error;
    if (status === 'pending') return;
    this.wake(ks, status === 'finished' ? null : (error ?? new WeftError(`future ${ks.key} ended as ${status}`)));
  }

  /** Counts a key off its waiters (finished), or fails them (error). */
  private wake(ks: KeyState, error: Error | null): void {
    const first = ks.waiter;
    const more = ks.moreWaiters;
    ks.waiter = null;
    ks.moreWaiters = null;
    if (first) wakeOne(first, error);
    if (more) for (const w of more) wakeOne(w, error);
  }

  private onMessage(m: SchedulerToClient): void {
    switch (m.op) {
      case 'in-memory':
        for (let i = 0; i < m.tickets.length; i++) {
          const t = m.tickets[i] as number;
          const ks = this.byTicket[t % TICKET_SLOTS];
          // Released since (the slot is empty or holds a later record): nothing to tell.
          if (!ks || ks.ticket !== t) continue;
          ks.where = m.addresses[m.ticketHolder[i] as number] ?? null;
          this.settleState(ks, 'finished', null);
        }
        for (let i = 0; i < m.keys.length; i++) {
          const ks = this.keys.get(m.keys[i] as string);
          if (!ks) continue;
          ks.where = m.addresses[m.holder[i] as number] ?? null;
          this.settleState(ks, 'finished', null);
        }
        break;
      case 'erred':
        this.settle(m.key, 'error', remoteError(m.key, m.error));
        break;
      case 'lost':
        for (const k of m.keys) {
          const ks = this.keys.get(k);
          if (ks && ks.status === 'finished') ks.status = 'pending';
          if (ks) ks.where = null;
        }
        break;
      case 'no-worker':
        this.log.warn({ keys: m.keys }, m.reason);
        break;
      case 'events':
        this.onEvents(m.topics, m.data);
        break;
      case 'restarted':
        this.onRestarted();
        break;
      default:
        this.requests.resolve(m.id, m);
    }
  }

  private onEvents(topics: readonly string[], data: readonly Uint8Array[]): void {
    for (let i = 0; i < topics.length && i < data.length; i++) {
      const handlers = this.handlers.get(topics[i] as string);
      if (!handlers) continue;
      let value: unknown;
      try {
        value = decode(data[i] as Uint8Array);
      } catch (err) {
        this.log.warn({ topic: topics[i], err: (err as Error).message }, 'dropped a task event that could not be decoded');
        continue;
      }
      for (const h of handlers) {
        try {
          h(value);
        } catch (err) {
          this.log.error({ topic: topics[i], err }, 'a task-event handler threw');
        }
      }
    }
  }

  /** The cluster restarted (this client's call or another's): every future is cancelled; the scheduler holds none of them. */
  private onRestarted(): void {
    const error = new CancelledError('the cluster was restarted (client.restart): its tasks and results are gone; submit again');
    for (const ks of this.keys.values()) {
      ks.held = false;
      ks.where = null;
      if (ks.status === 'cancelled') continue;
      ks.status = 'cancelled';
      ks.error = error;
      this.wake(ks, error);
    }
  }

  private onClosed(reason: string): void {
    if (this.closedError) return;
    this.closedError = new ConnectionClosedError(reason);
    this.requests.failAll(reason);
    for (const ks of this.keys.values()) {
      if (ks.status === 'finished' || ks.status === 'error') continue;
      ks.status = 'lost';
      this.wake(ks, this.closedError);
    }
    if (!this.userClosed && this.reconnectMs > 0) void this.reconnect();
  }

  /**
   * Fetches values from the workers holding them, in the order given: from
   * where the scheduler said they are, else where it says now (who-has),
   * retrying keys that moved.
   */
  /** The values of these keys, from the workers holding them (fetch.ts). */
  private fetchValues(states: readonly KeyState[]): Promise<unknown[]> {
    return fetchValues(this.fetcher, states);
  }

  /** What fetching values needs of this client. */
  private readonly fetcher: Fetcher<KeyState> = {
    wait: (states) => this.waitStates(states),
    whoHas: async (keys) => {
      const reply = await this.ask((id) => this.conn.send({ op: 'who-has', id, keys }));
      if (reply.op !== 'who-has-reply') throw new WeftError(`unexpected reply to who-has: ${reply.op}`);
      return keys.map((_, n) => reply.addresses[reply.holder[n] ?? -1]);
    },
    get: (address, keys) => this.peers.request(address, { op: 'get', keys: [...keys], packed: true }),
    drop: (address) => this.peers.drop(address),
    log: (data, msg) => this.log.warn(data, msg),
    timeoutMs: () => this.gatherTimeoutMs,
  };
}

/** The record of a key this client holds no future for. */
function cancelledState(key: string): KeyState {
  return { key, held: false, accepted: false, status: 'cancelled', error: new CancelledError(`future ${key} was cancelled or released`), where: null, refs: 0, waiter: null, moreWaiters: null, ticket: -1 };
}

function wakeOne(w: Waiter, error: Error | null): void {
  if (w.settled) return;
  if (error) {
    w.settled = true;
    w.reject(error);
  } else if (--w.left === 0) {
    w.settled = true;
    w.resolve();
  }
}
