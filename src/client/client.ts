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
import { decodeSequence, encodeOwned } from '../protocol/codec.ts';
import { connect } from '../protocol/handshake.ts';
import { schedulerToClient, type ClientToScheduler, type SchedulerToClient, type WorkerMetrics, type WorkerSummary } from '../protocol/messages.ts';
import { PeerPool } from '../protocol/peers.ts';
import { Requests } from '../protocol/requests.ts';
import { CancelledError, ConnectionClosedError, DataLostError, GraphError, remoteError, WeftError } from '../errors.ts';
import { createLogger, type Logger } from '../util/log.ts';
import { Future, type FutureHost, type FutureStatus } from './future.ts';
import { fnLabel, GraphBuilder, type Graph, type TaskFn, type TaskOptions } from './graph.ts';

export interface ClientOptions {
  /** Shared secret, when the scheduler requires one (default: WEFT_TOKEN). */
  token?: string | undefined;
  log?: Logger;
  /** How long to wait for the scheduler to answer the handshake. */
  timeoutMs?: number;
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
}

const GATHER_CHUNK = 20_000;

export class Client implements FutureHost {
  private keys = new Map<string, KeyState>();
  private requests = new Requests<SchedulerToClient>();
  private peers: PeerPool;
  private pendingRelease: string[] = [];
  private releaseScheduled = false;
  private closedError: Error | null = null;

  private constructor(
    readonly address: string,
    private readonly conn: Connection<SchedulerToClient, ClientToScheduler>,
    private readonly token: string | undefined,
    private readonly log: Logger,
  ) {
    this.peers = new PeerPool('client', token);
    conn.onMessages((msgs) => {
      for (const m of msgs) this.onMessage(m);
    });
    conn.onClose((code, reason) => this.onClosed(`scheduler connection closed (${code}${reason ? `: ${reason}` : ''})`));
  }

  static async connect(address: string, opts: ClientOptions = {}): Promise<Client> {
    const token = opts.token ?? process.env['WEFT_TOKEN'];
    const conn = await connect<SchedulerToClient, ClientToScheduler>(address, { role: 'client', token, schema: schedulerToClient, timeoutMs: opts.timeoutMs ?? 10_000, label: 'scheduler' });
    return new Client(address, conn, token, opts.log ?? createLogger('weft-client', 'warn'));
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

  /** One task per item: `fn(item)`. */
  map<T = unknown>(fn: TaskFn, items: Iterable<unknown>, opts: Omit<SubmitOptions, 'key'> = {}): Future<T>[] {
    const b = new GraphBuilder();
    for (const item of items) b.add(fn, [item], opts, opts.pure === false ? `${fnLabel(fn)}-${randomUUID()}` : undefined);
    const futures = b.keys.map((k) => new Future<T>(k, this));
    this.send(b, b.keys.map((_, i) => i)).catch(() => {});
    return futures;
  }

  /**
   * Submits a whole graph in one message: `{ key: { fn, args, ...options } }`,
   * where args refer to other keys with `ref('key')` or to futures. Resolves
   * with futures for `opts.keys` (default: the graph's outputs) once the
   * scheduler has accepted the graph; rejects with GraphError if it is invalid.
   */
  async compute(graph: Graph, opts: ComputeOptions = {}): Promise<Record<string, Future>> {
    const { builder, wanted } = this.build(graph, opts.keys);
    const futures: Record<string, Future> = {};
    for (const k of wanted.keys) futures[k] = new Future(k, this);
    try {
      await this.send(builder, wanted.indices, wanted.existing);
    } catch (err) {
      for (const f of Object.values(futures)) f.release();
      throw err;
    }
    return futures;
  }

  /** Computes a graph and returns the values of `keys` (default: its outputs), releasing them after. */
  async get(graph: Graph, keys?: string[]): Promise<Record<string, unknown>> {
    const { builder, wanted } = this.build(graph, keys);
    for (const k of wanted.keys) this.retain(k);
    try {
      await this.send(builder, wanted.indices, wanted.existing);
      await this.waitKeys(wanted.keys);
      const values = await this.fetchValues(wanted.keys);
      const out: Record<string, unknown> = {};
      for (const k of wanted.keys) out[k] = values.get(k);
      return out;
    } finally {
      for (const k of wanted.keys) this.releaseKey(k);
    }
  }

  private build(graph: Graph, keys: string[] | undefined): { builder: GraphBuilder; wanted: { keys: string[]; indices: number[]; existing: string[] } } {
    const builder = new GraphBuilder();
    for (const key in graph) {
      const def = graph[key];
      if (!def || (typeof def.fn !== 'string' && typeof def.fn !== 'function')) throw new GraphError(`graph entry ${key} needs a fn (a "module#export" string or a function)`, [key]);
      builder.add(def.fn, def.args ?? [], def, key);
    }
    const indexOf = new Map<string, number>();
    builder.keys.forEach((k, i) => indexOf.set(k, i));
    let want = keys;
    if (!want) {
      const used = builder.depKeys();
      want = builder.keys.filter((k) => !used.has(k));
    }
    const indices: number[] = [];
    const existing: string[] = [];
    for (const k of want) {
      const i = indexOf.get(k);
      if (i === undefined) existing.push(k);
      else indices.push(i);
    }
    return { builder, wanted: { keys: want, indices, existing } };
  }

  private async send(b: GraphBuilder, wants: number[], wantKeys: string[] = []): Promise<void> {
    if (this.closedError) throw this.closedError;
    const reply = await this.requests.start((id) => this.conn.send(b.build(id, wants, wantKeys)));
    if (reply.op === 'graph-rejected') {
      const err = new GraphError(reply.error.message, reply.keys);
      for (const i of wants) {
        const key = b.keys[i] as string;
        if (this.keys.get(key)?.accepted === false) this.settle(key, 'error', err);
      }
      throw err;
    }
    for (const i of wants) {
      const ks = this.keys.get(b.keys[i] as string);
      if (ks) ks.accepted = true;
    }
  }

  // ------------------------------------------------------------------ results

  /** Waits for the futures and fetches their values, in order. Rejects with the first error. */
  async gather<T = unknown>(futures: readonly Future<T>[]): Promise<T[]> {
    const keys = futures.map((f) => f.key);
    const unique = [...new Set(keys)];
    await this.waitKeys(unique);
    const values = await this.fetchValues(unique);
    return keys.map((k) => values.get(k) as T);
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
        const r = await this.requests.start((id) => this.conn.send({ op: 'scattered', id, keys: idx.map((i) => keys[i] as string), nbytes: reply.nbytes, worker: address }));
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

  /** A future for a key someone already submitted (this client or another). */
  async futureOf<T = unknown>(key: string): Promise<Future<T>> {
    const f = new Future<T>(key, this);
    const reply = await this.requests.start((id) => this.conn.send({ op: 'want', id, keys: [key] }));
    if (reply.op === 'want-reply' && reply.missing.length > 0) {
      f.release();
      throw new WeftError(`the scheduler does not know key ${key}`);
    }
    return f;
  }

  /** Cancels futures: their tasks stop unless something else needs them. */
  async cancel(futures: readonly Future[]): Promise<void> {
    await this.cancelKeys(futures.map((f) => f.key));
  }

  /** The workers in the cluster. */
  async workers(): Promise<WorkerSummary[]> {
    const reply = await this.requests.start((id) => this.conn.send({ op: 'workers', id }));
    return reply.op === 'workers-reply' ? reply.workers : [];
  }

  /** Counters from each worker (bytes moved, tasks run), keyed by worker address. */
  async workerMetrics(): Promise<Record<string, WorkerMetrics>> {
    const out: Record<string, WorkerMetrics> = {};
    for (const w of await this.workers()) {
      const reply = await this.peers.request(w.address, { op: 'metrics' });
      if (reply.op === 'metrics-reply') out[w.address] = reply.metrics;
    }
    return out;
  }

  async close(): Promise<void> {
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
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const w: Waiter = { left: 0, settled: false, resolve, reject };
      for (const key of keys) {
        const ks = this.keys.get(key);
        if (!ks) return reject(new CancelledError(`future ${key} was cancelled or released`));
        if (ks.status === 'finished') continue;
        if (ks.status === 'error' || ks.status === 'cancelled') return reject(ks.error ?? new CancelledError(`future ${key} was cancelled`));
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
    return (await this.fetchValues([key])).get(key);
  }

  retain(key: string): void {
    const ks = this.keys.get(key);
    if (ks) ks.refs++;
    else this.keys.set(key, { accepted: false, status: 'pending', error: null, where: null, refs: 1, waiter: null, moreWaiters: null });
  }

  releaseKey(key: string): void {
    const ks = this.keys.get(key);
    if (!ks || --ks.refs > 0) return;
    this.keys.delete(key);
    this.pendingRelease.push(key);
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
      this.keys.delete(key);
      if (ks.status === 'pending' || ks.status === 'lost') {
        ks.status = 'cancelled';
        ks.error = new CancelledError(`future ${key} was cancelled`);
        this.wake(ks, ks.error);
      }
      toRelease.push(key);
    }
    if (toRelease.length > 0 && !this.closedError) this.conn.send({ op: 'release', keys: toRelease });
  }

  // ------------------------------------------------------------------ internals

  private flushReleases(): void {
    this.releaseScheduled = false;
    if (this.pendingRelease.length === 0 || this.closedError) return;
    // A key held again since it was released (same work submitted again) stays wanted.
    const keys = this.pendingRelease.filter((k) => !this.keys.has(k));
    this.pendingRelease = [];
    if (keys.length > 0) this.conn.send({ op: 'release', keys });
  }

  private settle(key: string, status: FutureStatus, error: Error | null): void {
    const ks = this.keys.get(key);
    if (!ks) return;
    ks.status = status;
    ks.error = error;
    if (status === 'pending') return;
    this.wake(ks, status === 'finished' ? null : (error ?? new WeftError(`future ${key} ended as ${status}`)));
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
        for (let i = 0; i < m.keys.length; i++) {
          const key = m.keys[i] as string;
          const ks = this.keys.get(key);
          if (ks) ks.where = m.addresses[m.holder[i] as number] ?? null;
          this.settle(key, 'finished', null);
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
      default:
        this.requests.resolve(m.id, m);
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
  }

  /**
   * Fetches values from the workers holding them: where the scheduler said
   * they are, else where it says now (who-has), retrying keys that moved.
   */
  private async fetchValues(keys: string[]): Promise<Map<string, unknown>> {
    const out = new Map<string, unknown>();
    let todo = keys;
    for (let attempt = 0; attempt < 5 && todo.length > 0; attempt++) {
      if (attempt > 0) await this.waitKeys(todo);
      const perWorker = new Map<string, string[]>();
      const missing: string[] = [];
      const place = (k: string, w: string | undefined | null): void => {
        if (!w) return void missing.push(k);
        const list = perWorker.get(w);
        if (list) list.push(k);
        else perWorker.set(w, [k]);
      };
      const unknown = attempt === 0 ? todo.filter((k) => !this.keys.get(k)?.where) : todo;
      if (attempt === 0) for (const k of todo) if (this.keys.get(k)?.where) place(k, this.keys.get(k)?.where);
      if (unknown.length > 0) {
        const reply = await this.requests.start((id) => this.conn.send({ op: 'who-has', id, keys: unknown }));
        if (reply.op !== 'who-has-reply') throw new WeftError(`unexpected reply to who-has: ${reply.op}`);
        unknown.forEach((k, i) => place(k, reply.addresses[reply.holder[i] ?? -1]));
      }
      const requests: Promise<void>[] = [];
      for (const [address, ks] of perWorker) {
        for (let i = 0; i < ks.length; i += GATHER_CHUNK) {
          const chunk = ks.slice(i, i + GATHER_CHUNK);
          requests.push(
            this.peers.request(address, { op: 'get', keys: chunk, packed: true }).then(
              (r) => {
                if (r.op !== 'data' || !r.packed) throw new WeftError(`unexpected reply to get: ${r.op}`);
                const values = decodeSequence(r.blobs[0] ?? new Uint8Array(0));
                if (values.length !== r.keys.length) throw new WeftError(`worker ${address} sent ${values.length} values for ${r.keys.length} keys`);
                r.keys.forEach((k, j) => out.set(k, values[j]));
                for (const k of r.missing) missing.push(k);
              },
              () => {
                for (const k of chunk) missing.push(k);
              },
            ),
          );
        }
      }
      await Promise.all(requests);
      todo = missing;
    }
    if (todo.length > 0) throw new DataLostError(`could not fetch ${todo.length} result(s) from the workers (first: ${todo[0]}); they may have been released or lost`);
    return out;
  }
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
