/**
 * A weft worker process: the I/O around the worker state machine. It connects
 * to the scheduler, runs tasks on a pool of executor threads, serves its
 * results to peers and clients from its own data server, and fetches missing
 * inputs straight from the peers that hold them. It shuts down when its
 * scheduler connection ends.
 */
import { hostname } from 'node:os';
import type { WebSocketServer, WebSocket } from 'ws';
import { DEFAULT_DOOR, listen } from '../protocol/listen.ts';
import type { Connection} from '../protocol/connection.ts';
import { CLOSE_REFUSED, CLOSE_SHUTDOWN, DEFAULT_LIMITS, TURN_BUDGET_MS, type ConnectionLimits } from '../protocol/connection.ts';
import { TurnBudget } from '../protocol/turn-budget.ts';
import { accept, connect, type ConnectOptions } from '../protocol/handshake.ts';
import { messageSchemas, checkComputeColumns, type ComputeMsg, type FnDef, type PeerToWorker, type SchedulerToWorker, type WorkerMetrics, type WorkerToPeer, type WorkerToScheduler } from '../protocol/messages.ts';
import { PeerPool } from '../protocol/peers.ts';
import { checkExposure, contactAddress } from '../protocol/exposure.ts';
import { serverTls, type TlsOptions } from '../protocol/tls.ts';
import { SpillStore } from './spill.ts';
import { MEMORY_EXIT_CODE, RESTART_EXIT_CODE } from './exit-codes.ts';
import { decode, encodeOwned } from '../protocol/codec.ts';
import { serializeError } from '../errors.ts';
import { resolveFunction } from './functions.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { ExecutorPool, type EarlyPut } from './executor-pool.ts';
import { MEMORY, SPILL_RETRY_MS, WorkerState, type ExecResult, type ExecTask, type WorkerInstruction } from './state-machine.ts';

const NO_DEPS: string[] = [];
const NO_WHO: string[][] = [];
/** Over the spill threshold, garbage is collected at most this often, and at most a tenth of the time (see collectIfOver). */
const GC_EVERY_MS = 200;

export interface WorkerOptions {
  /** ws://host:port of the scheduler. */
  scheduler: string;
  nthreads?: number;
  resources?: Record<string, number>;
  name?: string;
  /** Interface for this worker's data server (peers fetch results from it). */
  host?: string;
  /** Where peers and clients reach the data server, when not where it is bound (e.g. bound to 0.0.0.0). */
  contactAddress?: string;
  port?: number;
  token?: string | undefined;
  log?: Logger;
  /** Directory that relative task modules resolve against. */
  cwd?: string;
  heartbeatMs?: number;
  /** A task cancelled (or released) while it runs and still running this long after ends with its thread (default 3,000). */
  cancelGraceMs?: number;
  /** Heap limit of each executor thread, MB (0: V8's default). */
  threadHeapLimitMb?: number;
  /** TLS: the data port serves wss:// with this certificate, and connections to the scheduler and peers trust this CA. */
  tls?: TlsOptions | null;
  /** Bytes (0: none): past its thresholds results spill to disk, tasks pause, the process stops (see MEMORY). */
  memoryLimit?: number;
  /** Where spilled results go (a directory of this worker's own is made in it; default: the system's temporary directory). */
  localDirectory?: string;
  /** How long to try connecting again after losing the scheduler (default 30,000; 0: stop at once). */
  schedulerReconnectMs?: number;
  /** Paused with nowhere to spill (disk full) this long, it fails the tasks waiting to start (default 30,000). */
  pausedTimeoutMs?: number;
  /** Web origins whose pages may open a WebSocket to the data port (none by default: see listen.ts). */
  allowOrigins?: readonly string[];
  limits?: ConnectionLimits;
}

export class WeftWorker {
  private sm: WorkerState;
  private scheduler!: Connection<SchedulerToWorker, WorkerToScheduler>;
  private flushScheduled = false;
  private heartbeat: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  private resolveClosed!: (reason: string) => void;
  /** Resolves with the reason once the worker has shut down. */
  readonly closed: Promise<string>;
  private metrics = { bytesSentToPeers: 0, bytesSentToClients: 0, bytesFetched: 0 };
  /** Spilled results on disk (with a memory limit only). */
  private readonly spill: SpillStore | null;
  /** Measures the process's memory for the limit's thresholds (with a memory limit only). */
  private memoryTimer: NodeJS.Timeout | null = null;

  private constructor(
    readonly name: string,
    readonly address: string,
    private readonly opts: Required<Pick<WorkerOptions, 'nthreads' | 'heartbeatMs'>> & WorkerOptions,
    private readonly server: WebSocketServer,
    private readonly pool: ExecutorPool,
    private readonly peers: PeerPool,
    private readonly log: Logger,
  ) {
    this.sm = new WorkerState({ nthreads: opts.nthreads, resources: opts.resources ?? {}, address, memoryLimit: opts.memoryLimit ?? 0, pausedTimeoutMs: opts.pausedTimeoutMs ?? 30_000 });
    this.spill = (opts.memoryLimit ?? 0) > 0 ? new SpillStore(opts.localDirectory) : null;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  static async start(options: WorkerOptions): Promise<WeftWorker> {
    const opts = { nthreads: 1, heartbeatMs: 1000, ...options };
    const log = opts.log ?? silentLogger();
    // One handling budget per turn for its connection to the scheduler and its peers' (turn-budget.ts).
    const limits = { ...(opts.limits ?? DEFAULT_LIMITS), turn: new TurnBudget(TURN_BUDGET_MS) };
    const host = opts.host ?? '127.0.0.1';
    checkExposure('worker', host, opts.token);
    const tls = serverTls(opts.tls ?? null, 'worker data port');
    const { server, address: bound, door } = await listen(host, opts.port ?? 0, limits, { ...DEFAULT_DOOR, allowOrigins: opts.allowOrigins ?? [] }, tls);
    let address: string;
    try {
      address = contactAddress(bound, host, opts.contactAddress);
    } catch (err) {
      server.close();
      throw err;
    }
    const name = opts.name ?? `${hostname()}-${process.pid}-${address.replace(/^.*:/, '')}`;
    let self: WeftWorker | null = null;
    const pool = new ExecutorPool(
      opts.nthreads,
      opts.cwd ?? process.cwd(),
      (results) => self?.onResults(results),
      (events, early) => self?.onEvents(events.topics, events.data, early),
      (index, reason) => log.error({ thread: index, reason }, 'executor thread ended; started a new one'),
      {
        threadHeapLimitMb: opts.threadHeapLimitMb ?? 0,
        onNote: (note) => log.info(note),
        // Tasks' own clients connect where this worker does, with its token and certificates.
        scheduler: { address: opts.scheduler, token: opts.token, ...(opts.tls ? { tls: { ca: opts.tls.ca, cert: opts.tls.cert, key: opts.tls.key } } : {}) },
        onSecede: (task, away) => self?.onSecede(task, away),
      },
    );
    const worker = new WeftWorker(name, address, opts, server, pool, new PeerPool('peer', opts.token, limits, tls), log);
    self = worker;
    server.on('connection', (ws) => worker.onPeer(ws, () => door.admitted(ws)));
    worker.connectOptions = {
      role: 'worker',
      token: opts.token,
      schema: messageSchemas().schedulerToWorker,
      limits,
      label: 'scheduler',
      tls,
      worker: { name, address, nthreads: opts.nthreads, resources: opts.resources ?? {}, pid: process.pid, memoryLimit: opts.memoryLimit ?? 0 },
    };
    try {
      await pool.ready();
      worker.scheduler = await connect<SchedulerToWorker, WorkerToScheduler>(opts.scheduler, worker.connectOptions);
    } catch (err) {
      await pool.close();
      server.close();
      throw err;
    }
    worker.wireScheduler();
    worker.heartbeat = setInterval(() => worker.sendHeartbeat(), opts.heartbeatMs);
    worker.heartbeat.unref();
    if ((opts.memoryLimit ?? 0) > 0) {
      // Five times a second: results of 20 MB arriving every few ms can pass a threshold between two looks, but the held bytes are checked as each arrives.
      worker.memoryTimer = setInterval(() => {
        let rss = process.memoryUsage.rss();
        // Garbage first: what is still held after a collection decides spilling, pausing and stopping.
        if (worker.collectIfOver(rss)) rss = process.memoryUsage.rss();
        worker.sm.memory(rss, Date.now());
        worker.act();
      }, 200);
      worker.memoryTimer.unref();
    }
    log.info({ name, address, scheduler: opts.scheduler, nthreads: opts.nthreads, resources: opts.resources ?? {} }, 'worker started');
    return worker;
  }

  private connectOptions!: ConnectOptions<SchedulerToWorker>;
  private reconnecting = false;
  /** close() was called (set first thing: see close). */
  private stopping = false;

  private wireScheduler(): void {
    this.scheduler.onInternalError = (err) => this.log.error({ err }, 'error handling a scheduler message');
    this.scheduler.onMessages((msgs) => this.onScheduler(msgs));
    this.scheduler.onClose((code, reason) => void this.lostScheduler(code, `scheduler connection closed (${code}${reason ? `: ${reason}` : ''})`));
  }

  /**
   * The scheduler connection closed. Told to go (the scheduler shut down or
   * retired this worker), or never to wait: the worker stops. Otherwise (the
   * scheduler died, or the network broke) it tries again for
   * `schedulerReconnectMs`, keeping the results it holds: its running tasks
   * are ended (the scheduler gives them to others) and, connected again, it
   * tells the scheduler what it holds.
   */
  private async lostScheduler(code: number, why: string): Promise<void> {
    const wait = this.opts.schedulerReconnectMs ?? 30_000;
    if (this.stopping || code === CLOSE_SHUTDOWN || code === CLOSE_REFUSED || wait <= 0) return void this.close(why);
    if (this.reconnecting) return;
    this.reconnecting = true;
    this.log.warn({ why, retryForMs: wait }, 'lost the scheduler; connecting again');
    this.pool.restart();
    this.sm = this.sm.keepingResults();
    const deadline = Date.now() + wait;
    while (!this.stopping && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      try {
        this.scheduler = await connect<SchedulerToWorker, WorkerToScheduler>(this.opts.scheduler, { ...this.connectOptions, timeoutMs: 5000 });
      } catch {
        continue;
      }
      this.reconnecting = false;
      this.wireScheduler();
      const { keys, nbytes } = this.sm.heldResults();
      this.scheduler.send({ op: 'holding', keys, nbytes: Float64Array.from(nbytes) });
      this.log.info({ holding: keys.length }, 'connected to the scheduler again');
      return;
    }
    this.reconnecting = false;
    await this.close(`${why}; no scheduler within ${wait / 1000} s`);
  }

  /** Stops serving, ends threads and connections. Safe to call more than once. */
  close(reason = 'closed'): Promise<void> {
    if (this.closing) return this.closing;
    // Set before anything closes: the scheduler connection's close handler runs inside this call and must not reconnect.
    this.stopping = true;
    this.closing = (async () => {
      this.log.info({ reason }, 'worker shutting down');
      if (this.heartbeat) clearInterval(this.heartbeat);
      if (this.memoryTimer) clearInterval(this.memoryTimer);
      this.scheduler?.close(1000, 'worker closing');
      for (const ws of this.server.clients) ws.terminate();
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
      await this.peers.close();
      await this.pool.close();
      this.spill?.close();
      this.resolveClosed(reason);
    })();
    return this.closing;
  }

  // ------------------------------------------------------------------ scheduler

  private onScheduler(msgs: SchedulerToWorker[]): void {
    for (const m of msgs) {
      if (m.op === 'compute') this.computeBatch(m);
      else if (m.op === 'fns') this.sm.defineFns(m.ids, m.defs);
      else if (m.op === 'acquire') this.sm.acquire(m.keys, m.who, m.sizes);
      else if (m.op === 'restart') this.restart();
      else if (m.op === 'forget-fns') this.sm.forgetFns(m.ids);
      else if (m.op === 'steal') this.sm.steal(m.keys, m.runs);
      else {
        this.sm.free(m.keys);
        // An actor's task freed: the actor goes too.
        this.pool.dropActors(m.keys);
      }
    }
    this.act();
  }

  /**
   * client.restart: every result and task here is dropped and the executor
   * threads are replaced by fresh ones (a task stuck in a loop included);
   * the process, its connections and its functions stay.
   */
  private restart(): void {
    if (process.env['WEFT_NANNY'] === '1') {
      // Under a nanny: a new process (fresh memory too); the nanny starts it at once, and it joins under the same name.
      this.log.info('restarting as a new process (client.restart)');
      this.exitCode = RESTART_EXIT_CODE;
      void this.close('client.restart');
      return;
    }
    this.sm = new WorkerState(this.sm.config);
    this.pool.restart();
    this.log.info('restarted: results dropped, executor threads replaced');
    this.scheduler.send({ op: 'restarted' });
  }

  private computeBatch(m: ComputeMsg): void {
    const bad = checkComputeColumns(m);
    if (bad) {
      this.scheduler.fail(`malformed compute message: ${bad}`);
      return;
    }
    const res = m.resources.length > 0 ? new Map(m.resources) : null;
    const ephemeral = m.ephemeral && m.ephemeral.length > 0 ? new Set(m.ephemeral) : null;
    const blob = m.args;
    let d = 0;
    let argStart = 0;
    for (let i = 0; i < m.keys.length; i++) {
      const argEnd = m.argEnds[i] as number;
      const n = m.depCounts[i] as number;
      this.sm.compute({
        key: m.keys[i] as string,
        run: m.runs[i] as number,
        fn: m.fns[i] as number,
        args: new Uint8Array(blob.buffer, blob.byteOffset + argStart, argEnd - argStart),
        order: m.orders[i] as number,
        priority: m.priorities[i] as number,
        deps: n === 0 ? NO_DEPS : m.deps.slice(d, d + n),
        who: n === 0 ? NO_WHO : m.who.slice(d, d + n),
        sizes: n === 0 ? undefined : m.sizes.subarray(d, d + n),
        ephemeral: ephemeral?.has(i) === true,
        resources: res?.get(i) ?? null,
      });
      d += n;
      argStart = argEnd;
    }
  }

  private onResults(results: ExecResult[]): void {
    // Act now: the connection batches what this sends until the end of the turn anyway.
    this.sm.executed(results);
    this.act();
  }

  private onSecede(task: ExecTask, away: boolean): void {
    this.sm.secede(task, away);
    this.act();
  }

  /** Task events go to the scheduler as they come, ahead of results sent later in this turn. */
  private onEvents(topics: string[], data: Uint8Array[], early: EarlyPut[]): void {
    if (early.length > 0) this.putEarly(early);
    if (topics.length > 0 && this.scheduler?.isOpen) this.scheduler.send({ op: 'task-events', topics, data });
  }

  /**
   * Results running tasks put early: kept here (never in place of one this
   * worker has) and told to the scheduler, ahead of the events announcing them.
   */
  private putEarly(early: EarlyPut[]): void {
    const parents: string[] = [];
    const runs: number[] = [];
    const keys: string[] = [];
    const nbytes: number[] = [];
    for (const e of early) {
      if (this.sm.knows(e.key)) continue;
      this.sm.put([e.key], [e.bytes]);
      parents.push(e.task.key);
      runs.push(e.task.run);
      keys.push(e.key);
      nbytes.push(e.bytes.length);
    }
    if (keys.length > 0 && this.scheduler?.isOpen) this.scheduler.send({ op: 'early', parents, runs: Float64Array.from(runs), keys, nbytes: Float64Array.from(nbytes) });
  }

  /** CPU time and wall time at the last heartbeat, for the CPU share since. */
  private lastCpu = { usage: process.cpuUsage(), at: performance.now() };

  private sendHeartbeat(): void {
    if (!this.scheduler?.isOpen) return;
    const usage = process.cpuUsage();
    const at = performance.now();
    const cpuMs = (usage.user - this.lastCpu.usage.user + usage.system - this.lastCpu.usage.system) / 1000;
    const cpu = at > this.lastCpu.at ? cpuMs / (at - this.lastCpu.at) : 0;
    this.lastCpu = { usage, at };
    this.scheduler.send({
      op: 'heartbeat',
      memory: process.memoryUsage.rss(),
      cpu: Math.round(cpu * 1000) / 1000,
      sentToPeers: this.metrics.bytesSentToPeers,
      fetched: this.metrics.bytesFetched,
      ...(this.spill ? { paused: this.sm.paused, spilledBytes: this.sm.spilledBytes, ...(this.sm.spillBlocked ? { spillBlocked: this.sm.spillBlocked.reason } : {}) } : {}),
      stuck: this.pool.stuck,
    });
  }

  private scheduleAct(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.act();
    });
  }

  /** Carries out the state machine's instructions. */
  private act(): void {
    const instructions: WorkerInstruction[] = this.sm.takeInstructions();
    for (const ins of instructions) {
      switch (ins.type) {
        case 'send':
          this.scheduler.send(ins.msg as WorkerToScheduler);
          break;
        case 'execute':
          this.pool.execute(ins.tasks);
          break;
        case 'define':
          this.pool.define(ins.ids, ins.defs);
          break;
        case 'forget':
          this.pool.forget(ins.ids);
          break;
        case 'fetch':
          void this.fetch(ins.peer, ins.keys);
          break;
        case 'cancel':
          this.pool.cancel(ins.keys);
          this.endIfStillRunning(ins.keys);
          break;
        case 'spill':
          this.writeSpilled(ins.entries);
          break;
        case 'unspill':
          for (const key of ins.keys) this.readSpilled(key);
          this.scheduleAct();
          break;
        case 'drop-spilled':
          for (const key of ins.keys) this.spill?.drop(key);
          break;
        case 'terminate':
          this.log.error({ reason: ins.reason }, 'stopping: over the memory limit');
          this.exitCode = MEMORY_EXIT_CODE;
          void this.close(ins.reason);
          break;
      }
    }
  }

  private lastGc = 0;
  /** How long the last collection took: a large heap is collected less often. */
  private lastGcMs = 0;

  /**
   * Over the memory limit's spill threshold, the values just spilled (and
   * the inputs tasks have done with, in the executor threads) are garbage
   * until V8 collects them, which an idle (paused) worker may not do for a
   * long time: collect now, here and in every thread, at most every
   * GC_EVERY_MS (when the process runs with --expose-gc, as under its
   * nanny). Inputs of 64 MiB arriving every few tens of ms leave that much
   * garbage between two collections a second apart: a worker was stopped
   * over its limit holding a fifth of it in live values.
   */
  private collectIfOver(rss: number): boolean {
    const limit = this.opts.memoryLimit ?? 0;
    const gc = (globalThis as { gc?: () => void }).gc;
    if (!gc || limit <= 0 || rss <= MEMORY.spill * limit || Date.now() - this.lastGc < Math.max(GC_EVERY_MS, 10 * this.lastGcMs)) return false;
    const start = performance.now();
    gc();
    this.lastGcMs = performance.now() - start;
    this.lastGc = Date.now();
    this.pool.collectGarbage();
    return true;
  }

  /**
   * Writes spilled results. A write that fails (disk full) puts it and the
   * rest of the batch back in memory, and blocks spilling (the state machine
   * tries again every few seconds); the log says so when that starts and when
   * a write works again, not at every try.
   */
  private writeSpilled(entries: [string, Uint8Array][]): void {
    let failure: string | null = null;
    for (const [key, bytes] of entries) {
      if (failure === null) {
        try {
          (this.spill as SpillStore).write(key, bytes);
          if (this.sm.spillWritten()) this.log.info({ dir: this.opts.localDirectory }, 'spilling to disk works again: the worker resumes spilling');
          continue;
        } catch (err) {
          failure = (err as Error).message;
        }
      }
      if (this.sm.spillFailed(key, bytes, failure)) this.log.error({ key, err: failure, dir: this.opts.localDirectory }, `cannot spill results to disk (they stay in memory); trying again every ${SPILL_RETRY_MS / 1000} s`);
    }
  }

  private readSpilled(key: string): void {
    try {
      this.sm.unspilled(key, (this.spill as SpillStore).read(key));
    } catch (err) {
      this.log.error({ key, err: (err as Error).message }, 'cannot read a spilled result back');
    }
  }

  /**
   * Cancelled tasks get their signal; one still running after the grace
   * period ignores it (a loop that never checks): its thread is ended and
   * replaced, and the tasks queued behind it run on the new one.
   */
  private endIfStillRunning(keys: readonly string[]): void {
    const grace = this.opts.cancelGraceMs ?? 3000;
    const timer = setTimeout(() => {
      this.pool.endRunaways(new Set(keys), `was cancelled and still ran ${grace / 1000} s later: its thread was ended`);
    }, grace);
    timer.unref();
  }

  private async fetch(peer: string, keys: string[]): Promise<void> {
    try {
      const reply = await this.peers.request(peer, { op: 'get', keys });
      if (reply.op !== 'data') throw new Error(`unexpected reply ${reply.op}`);
      const byKey = new Map<string, Uint8Array>();
      reply.keys.forEach((k, i) => {
        const b = reply.blobs[i];
        if (b) {
          byKey.set(k, b);
          this.metrics.bytesFetched += b.length;
        }
      });
      this.sm.fetched(peer, keys, keys.map((k) => byKey.get(k) ?? null));
    } catch (err) {
      this.log.warn({ peer, keys: keys.length, err: (err as Error).message }, 'fetch from peer failed');
      this.sm.fetchFailed(peer, keys);
    }
    this.scheduleAct();
  }

  // ------------------------------------------------------------------ data server

  private onPeer(ws: WebSocket, admitted: () => void): void {
    void accept(ws, { token: this.opts.token, roles: ['peer', 'client'], id: `${this.name}-peer`, schemaFor: () => messageSchemas().peerToWorker, label: 'peer' }).then((ok) => {
      if (!ok) return;
      admitted();
      const conn = ok.conn as unknown as Connection<PeerToWorker, WorkerToPeer>;
      const isClient = ok.hello.role === 'client';
      conn.onInternalError = (err) => this.log.error({ err }, 'error handling a peer request');
      conn.onMessages((msgs) => {
        for (const m of msgs) this.onPeerRequest(conn, m, isClient);
      });
    });
  }

  private onPeerRequest(conn: Connection<PeerToWorker, WorkerToPeer>, m: PeerToWorker, isClient: boolean): void {
    switch (m.op) {
      case 'get': {
        const packed = m.packed === true;
        const { keys, blobs, missing, bytes } = this.collect(m.keys, packed);
        // Values handed on (never kept here) that someone asks for: the scheduler computes them again.
        const lost = missing.filter((k) => this.sm.takeHandedOn(k));
        if (lost.length > 0 && this.scheduler?.isOpen) this.scheduler.send({ op: 'lost', keys: lost });
        if (isClient) this.metrics.bytesSentToClients += bytes;
        else this.metrics.bytesSentToPeers += bytes;
        // Packed: the values in the order asked for (without the missing), and no keys back.
        if (packed) conn.send({ op: 'data', id: m.id, keys: [], blobs: packValues(blobs), missing, packed: true });
        else conn.send({ op: 'data', id: m.id, keys, blobs, missing });
        break;
      }
      case 'put': {
        // A put adds results; it never replaces one (computed here, or put before): another client's value stays as it was.
        const known = m.keys.map((k) => this.sm.knows(k));
        if (!m.partial) {
          const refused = m.keys.filter((_, i) => known[i]);
          if (refused.length > 0) {
            conn.send({ op: 'put-ok', id: m.id, nbytes: [], refused });
            break;
          }
          conn.send({ op: 'put-ok', id: m.id, nbytes: this.sm.put(m.keys, m.blobs.map((b) => b ?? new Uint8Array(0))) });
          break;
        }
        // Partial (a client giving back lost values, client/restore.ts): a key known here keeps its value, and a task not started for it is done with the one given.
        const refused: string[] = [];
        const nbytes: number[] = [];
        m.keys.forEach((key, i) => {
          const blob = m.blobs[i] ?? new Uint8Array(0);
          if (!known[i]) nbytes.push(...this.sm.put([key], [blob]));
          else if (this.sm.fillIn(key, blob)) nbytes.push(blob.length);
          else refused.push(key);
        });
        this.scheduleAct();
        conn.send(refused.length > 0 ? { op: 'put-ok', id: m.id, nbytes, refused } : { op: 'put-ok', id: m.id, nbytes });
        break;
      }
      case 'metrics':
        conn.send({ op: 'metrics-reply', id: m.id, metrics: this.currentMetrics() });
        break;
      case 'run':
        if (!isClient) conn.send({ op: 'run-reply', id: m.id, error: { name: 'WeftError', message: 'only clients may run functions on a worker' } });
        else void this.runHere(conn, m.id, m.fn, m.args);
        break;
      case 'actor-call':
        if (!isClient) conn.send({ op: 'actor-reply', id: m.id, error: { name: 'WeftError', message: 'only clients call actors' } });
        else
          void this.pool.actorCall(m.actor, m.method, m.args).then((r) => {
            conn.send(r.error ? { op: 'actor-reply', id: m.id, error: r.error } : { op: 'actor-reply', id: m.id, value: r.bytes ?? new Uint8Array(0) });
          });
        break;
    }
  }

  /**
   * client.run: calls the function in this process's main thread (not an
   * executor thread: it sees and may change the worker process itself, as
   * Dask's does) and replies with what it returned.
   */
  private async runHere(conn: Connection<PeerToWorker, WorkerToPeer>, id: number, def: FnDef, args: Uint8Array): Promise<void> {
    try {
      const fn = await resolveFunction(def[0], def[1], this.opts.cwd ?? process.cwd());
      const decoded = decode(args);
      if (!Array.isArray(decoded)) throw new TypeError('the arguments are not an array');
      const value: unknown = await fn(...(decoded as unknown[]));
      conn.send({ op: 'run-reply', id, value: encodeOwned(value) });
    } catch (err) {
      conn.send({ op: 'run-reply', id, error: serializeError(err) });
    }
  }

  /**
   * The values held here of `asked` (and, unless `packed`, their keys), and
   * the keys not held. A method of its own, not a loop inside the request
   * switch: V8 optimizes this small loop once, instead of the whole handler.
   */
  private collect(asked: readonly string[], packed: boolean): { keys: string[]; blobs: Uint8Array[]; missing: string[]; bytes: number } {
    const keys: string[] = [];
    const blobs: Uint8Array[] = [];
    const missing: string[] = [];
    let bytes = 0;
    for (let i = 0; i < asked.length; i++) {
      const k = asked[i] as string;
      // A result spilled to disk is served from there (read, not brought back into memory).
      const b = this.sm.getData(k) ?? (this.spill && this.sm.isSpilled(k) ? this.spill.read(k) : undefined);
      if (b) {
        if (!packed) keys.push(k);
        blobs.push(b);
        bytes += b.length;
      } else missing.push(k);
    }
    return { keys, blobs, missing, bytes };
  }

  currentMetrics(): WorkerMetrics {
    return {
      ...this.metrics,
      tasksExecuted: this.sm.tasksExecuted,
      stored: this.sm.storedCount,
      storedBytes: this.sm.storedBytes,
      memoryLimit: this.opts.memoryLimit ?? 0,
      managedBytes: this.sm.storedBytes,
      spilledBytes: this.sm.spilledBytes,
      paused: this.sm.paused,
    };
  }

  /** The exit code for the process once closed: 3 when it stopped over its memory limit (its nanny starts a fresh one), else 0. */
  exitCode = 0;
}

/** A value this large goes as a blob of its own in a packed reply, as stored (no copy): it is sent as raw frames anyway. */
const PACK_ALONE_BYTES = 64 * 1024;

/**
 * Values back to back for a packed reply: runs of small values joined into
 * one buffer each (one frame for thousands of them), large ones as they are.
 */
function packValues(values: readonly Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let run: Uint8Array[] = [];
  let runBytes = 0;
  const endRun = (): void => {
    if (run.length === 0) return;
    out.push(run.length === 1 ? (run[0] as Uint8Array) : Buffer.concat(run, runBytes));
    run = [];
    runBytes = 0;
  };
  for (const v of values) {
    if (v.length >= PACK_ALONE_BYTES) {
      endRun();
      out.push(v);
    } else {
      run.push(v);
      runBytes += v.length;
    }
  }
  endRun();
  return out;
}
