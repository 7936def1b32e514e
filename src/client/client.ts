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
import { fetchValues, type Fetcher } from './fetch.ts';
import type { SchedulerStats, SyncCall } from './cluster-ops.ts';

export type { SchedulerStats, SyncCall } from './cluster-ops.ts';
import { PeerPool, type PeerRequest } from '../protocol/peers.ts';
import { makeActor, type ActorHandle } from './actor.ts';
import type { TlsOptions } from '../protocol/tls.ts';
import type { Snapshot } from '../scheduler/dashboard/snapshot.ts';
import { Requests } from '../protocol/requests.ts';
import { CancelledError, ConnectionClosedError, remoteError, WeftError } from '../errors.ts';
import { createLogger, type Logger } from '../util/log.ts';
import { Future, type FutureHost, type FutureStatus } from './future.ts';
import { fnLabel, GraphBuilder, type Graph, type GraphMap, type TaskDef, type TaskFn, type TaskOptions } from './graph.ts';
import { KeyBook, NO_COPY, type KeyState } from './keys.ts';
import { Restorer } from './restore.ts';
import { waitAndFetch, type GatherLink } from './gather.ts';
import { GraphSender } from './submit.ts';
import { getAll, type GetAllOptions, type StreamLink } from './stream.ts';

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

export class Client implements FutureHost {
  private requests = new Requests<SchedulerToClient>();
  private peers: PeerPool;
  private closedError: Error | null = null;
  /** The keys this client holds futures for (keys.ts). */
  private readonly book = new KeyBook(
    (keys) => this.conn.send({ op: 'release', keys }),
    () => this.closedError,
  );
  /** Sends graphs (submit.ts). */
  private readonly sender = new GraphSender({
    book: this.book,
    ask: (make) => this.ask((id) => this.conn.send(make(id))),
    flush: () => this.conn.flush(),
    closed: () => this.closedError,
  });
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
      this.book.reconnected();
      this.closedError = null;
      this.wire(conn);
      if (this.handlers.size > 0) conn.send({ op: 'subscribe', topics: [...this.handlers.keys()] });
      this.log.info('connected to the scheduler again');
      return;
    }
  }

  /**
   * Pings the scheduler; silent for `timeoutMs` (no frame at all: a ping's
   * answer may wait behind a graph of millions of tasks the scheduler is
   * still reading, and its answers to that graph's parts say it is alive),
   * the connection is cut (futures fail with ConnectionClosedError).
   */
  private watchScheduler(timeoutMs: number): void {
    let heard = performance.now();
    let ticked = heard;
    const every = Math.min(5000, Math.max(100, timeoutMs / 3));
    // This connection's watch: it ends with it (a new connection gets its own).
    const conn = this.conn;
    const timer = setInterval(() => {
      if (this.closedError || this.conn !== conn) return void clearInterval(timer);
      // Time this process did not listen (its event loop busy: a graph of millions of tasks built in one go) is not the
      // scheduler's silence: the answers may be waiting unread. Late by more than a period, the watch starts over from here.
      const now = performance.now();
      const late = now - ticked - every;
      ticked = now;
      if (late > every) heard = Math.max(heard, now - every);
      heard = Math.max(heard, conn.lastFrameAt);
      if (now - heard > timeoutMs) {
        clearInterval(timer);
        this.log.error({ silentMs: Math.round(now - heard) }, 'the scheduler has not answered: giving up on it');
        this.onClosed(`the scheduler did not answer for ${timeoutMs / 1000} s`);
        conn.ws.terminate();
        return;
      }
      this.ask((id) => this.conn.send({ op: 'ping', id })).then(
        () => (heard = performance.now()),
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
    this.sender.send(b, [0]).catch(() => {});
    return future;
  }

  /** One task per item: `fn(item)`. A long list goes to the scheduler in parts (see sendGraph). */
  map<T = unknown>(fn: TaskFn, items: Iterable<unknown>, opts: Omit<SubmitOptions, 'key'> = {}): Future<T>[] {
    const list = Array.isArray(items) ? (items as unknown[]) : [...items];
    const keys: string[] = new Array(list.length);
    const sent = this.sender.sendGraph(list.length, (b, i) => {
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
    const sub = this.sender.submitGraph(graph, opts.keys, false);
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
    const sub = this.sender.submitGraph(graph, typeof keys === 'string' ? [keys] : keys, true);
    const states = sub.states as KeyState[];
    try {
      await sub.sent;
      // Each value fetched stays on its record until the call returns: given back if its worker dies meanwhile (restore.ts).
      const values = await waitAndFetch(this.gatherLink, states, true);
      if (typeof keys === 'string') return values[0];
      if (keys) return values;
      const out: Record<string, unknown> = {};
      sub.keys.forEach((k, i) => (out[k] = values[i]));
      return out;
    } finally {
      for (const ks of states) ks.copy = NO_COPY;
      // Released on the next turn: the caller has its values without waiting
      // for the bookkeeping of many keys. A key held again meanwhile stays held.
      setImmediate(() => {
        for (const ks of states) this.book.release(ks);
      });
    }
  }

  /**
   * Computes a graph too large to hold, given as `[key, task]` entries (an
   * array, a Map, or a generator that makes them as they are read), and
   * returns every task's value in the order given. The entries are read
   * once, as they are sent; at most `window` tasks (default 262,144) are
   * out on the cluster at once, sending waiting for values to come back; a
   * value that no entry sent so far takes as an input is released on the
   * cluster once it is here. So ten million tasks need the memory of a
   * window, here and on the cluster, not that of the graph. An entry may
   * take as input any key on the cluster, and an earlier entry whose value
   * has not come back yet (one in the same window); a value already
   * released is gone, and such an entry fails with a GraphError.
   *
   *   function* entries() { for (let i = 0; i < 1e7; i++) yield [`inc-${i}`, { fn: './tasks.ts#inc', args: [i] }] as const; }
   *   const values = await client.getAll(entries()); // 10,000,000 numbers
   */
  getAll(entries: Iterable<readonly [string, TaskDef]>, opts: GetAllOptions = {}): Promise<unknown[]> {
    return getAll(this.streamLink, entries, opts);
  }

  /** What getAll needs of this client (stream.ts). */
  private readonly streamLink: StreamLink = {
    book: this.book,
    sender: this.sender,
    fetch: async (states) => {
      await this.book.wait(states);
      return this.fetchValues(states);
    },
    flush: () => this.conn.flush(),
  };

  // ------------------------------------------------------------------ results

  /** What gathering needs of this client (gather.ts). */
  private readonly gatherLink: GatherLink = { book: this.book, fetch: (states) => this.fetchValues(states) };

  /** Waits for the futures and fetches their values, in order. Rejects with the first error. */
  async gather<T = unknown>(futures: readonly Future<T>[]): Promise<T[]> {
    const states = futures.map((f) => this.book.getOrCancelled(f.key));
    return (await waitAndFetch(this.gatherLink, states)) as T[];
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
      const ks = this.book.get(k);
      if (ks) ks.accepted = true;
      this.book.settle(k, 'finished', null);
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
        if (reply.op === 'want-reply' && reply.missing.length > 0) this.book.settle(key, 'error', new WeftError(`the scheduler does not know key ${key}`));
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
  schedulerStats(opts: { reset?: boolean; gc?: boolean } = {}): Promise<SchedulerStats> {
    return ops.schedulerStats(this.link, opts);
  }

  /** Counters from each worker (bytes moved, tasks run), keyed by worker address. */
  workerMetrics(): Promise<Record<string, WorkerMetrics>> {
    return ops.workerMetrics(this.link);
  }

  async close(): Promise<void> {
    this.userClosed = true;
    this.book.flushReleases();
    this.conn.close(1000, 'client closing');
    await this.peers.close();
    this.onClosed('client closed');
  }

  // ------------------------------------------------------------------ FutureHost

  keyStatus(key: string): FutureStatus {
    return this.book.status(key);
  }

  waitKey(key: string): Promise<void> {
    return this.waitKeys([key]);
  }

  /** Resolves when every key has finished; rejects with the first error. */
  waitKeys(keys: readonly string[]): Promise<void> {
    return this.book.wait(keys.map((k) => this.book.getOrCancelled(k)));
  }

  async gatherOne(key: string): Promise<unknown> {
    return (await this.fetchValues([this.book.getOrCancelled(key)]))[0];
  }

  retain(key: string): void {
    this.book.hold(key);
  }

  releaseKey(key: string): void {
    const ks = this.book.get(key);
    if (ks) this.book.release(ks);
  }

  async cancelKeys(keys: string[]): Promise<void> {
    const toRelease = this.book.cancel(keys);
    if (toRelease.length > 0 && !this.closedError) this.conn.send({ op: 'release', keys: toRelease });
  }

  // ------------------------------------------------------------------ internals

  private onMessage(m: SchedulerToClient): void {
    switch (m.op) {
      case 'in-memory':
        this.book.inMemory(m);
        break;
      case 'erred':
        this.book.settle(m.key, 'error', remoteError(m.key, m.error));
        break;
      case 'lost':
        this.restorer.lost(this.book.lost(m.keys));
        break;
      case 'no-worker':
        this.log.warn({ keys: m.keys }, m.reason);
        break;
      case 'events':
        this.onEvents(m.topics, m.data);
        break;
      case 'restarted':
        // Every future is cancelled: the scheduler holds none of them.
        this.book.restarted(new CancelledError('the cluster was restarted (client.restart): its tasks and results are gone; submit again'));
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

  private onClosed(reason: string): void {
    if (this.closedError) return;
    this.closedError = new ConnectionClosedError(reason);
    this.requests.failAll(reason);
    this.book.connectionLost(this.closedError);
    if (!this.userClosed && this.reconnectMs > 0) void this.reconnect();
  }

  /** The values of these keys, from the workers holding them (fetch.ts). */
  private fetchValues(states: readonly KeyState[]): Promise<unknown[]> {
    return fetchValues(this.fetcher, states);
  }

  /** What fetching values needs of this client. */
  private readonly fetcher: Fetcher<KeyState> = {
    wait: (states) => this.book.wait(states),
    inMemory: (ks) => ks.status === 'finished',
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

  /** Gives back lost results a running `get` has fetched (restore.ts). */
  private readonly restorer = new Restorer({
    workers: async () => (await this.workers()).map((w) => w.address),
    put: (address, keys, blobs) => this.peers.request(address, { op: 'put', keys, blobs, partial: true }),
    send: (msg) => {
      if (!this.closedError) this.conn.send(msg);
    },
    log: (data, msg) => this.log.debug(data, msg),
  });
}
