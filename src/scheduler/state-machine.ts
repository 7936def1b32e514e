/**
 * The scheduler's decisions, as a pure state machine: `handle(event)` changes
 * state and queues messages; `takeInstructions()` returns what to send, which
 * connections to close and what to log. No sockets, no timers, no clock: the
 * time comes in with the events.
 */
import type { z } from 'zod';
import { lazySchemas } from '../util/zod.ts';
import type { SerializedError } from '../errors.ts';
import { checkGraphColumns, type ClientToScheduler, type FnDef, type GraphMsg, type TaskExtra, type WorkerInfo, type WorkerSummary, type WorkerToScheduler } from '../protocol/messages.ts';
import { Heap } from '../util/heap.ts';
import { assignGraphOrder } from './order.ts';
import { Outbox } from './outbox.ts';
import { addDependent, addHolder, addWanter, clearHolders, ClientState, FnEntry, forEachWanter, hasRestrictions, isNeeded, needsDeps, newTask, removeHolder, removeWanter, taskArgs, TaskGroup, WorkerState, type TaskState, type TaskStatus } from './task-state.ts';

export const schedulerConfigSchema = lazySchemas((z) =>
  z.object({
  /** A worker silent for this long (counting only time the scheduler was running to hear it) is removed and its work rescheduled. */
  heartbeatTimeoutMs: z.number().int().positive().default(15_000),
  /**
   * A gap between two events longer than this (they come at least every
   * tick, 500 ms) means the scheduler itself was not running (a long
   * synchronous step, a GC pause, the machine suspended): the time beyond it
   * is not counted against workers' silence.
   */
  stallThresholdMs: z.number().int().positive().default(1000),
  /** A task no worker can run errs after this long (it is reported at once). */
  noWorkerTimeoutMs: z.number().int().nonnegative().default(30_000),
  /** Worker deaths a task may be part of before it errs with KilledWorkerError. */
  allowedFailures: z.number().int().min(1).default(3),
  /** Root tasks handed to a worker cover about this much run time... */
  queueTargetSeconds: z.number().positive().default(0.02),
  /** ...and never more than this many per thread. */
  maxQueuedPerThread: z.number().int().min(1).default(2000),
  /** Per-task overhead (seconds) assumed on top of measured run time. */
  taskOverheadSeconds: z.number().nonnegative().default(0.00002),
  /** Assumed worker-to-worker bandwidth in bytes/s, for placement. */
  bandwidth: z.number().positive().default(100e6),
  /** Assumed run time of a task of a kind never measured before. */
  defaultDurationSeconds: z.number().positive().default(0.5),
}),
);
export type SchedulerConfig = z.infer<ReturnType<typeof schedulerConfigSchema>>;

export type SchedulerEvent =
  | { type: 'client-connected'; client: string }
  | { type: 'client-disconnected'; client: string }
  | { type: 'client-message'; client: string; msg: ClientToScheduler }
  | { type: 'worker-connected'; worker: string; info: WorkerInfo; now: number }
  | { type: 'worker-disconnected'; worker: string; reason: string }
  | { type: 'worker-message'; worker: string; msg: WorkerToScheduler; now: number }
  | { type: 'tick'; now: number }
  /** Go on with work left over from earlier events (see hasPendingWork); sent when nothing else is waiting. */
  | { type: 'continue' };

export interface LogRecord {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  data?: Record<string, unknown>;
}

export interface Instructions {
  /** Messages per connection id, in order. */
  messages: Map<string, object[]>;
  /** Connections to close (a worker that stopped heartbeating). */
  close: { id: string; reason: string }[];
  logs: LogRecord[];
}

/** `order` of a task new in the graph being added: FRESH - its index there. */
const FRESH = -10;

/**
 * Tasks released (or forgotten) per event at most: releasing a large graph
 * cascades through all of it, and the rest waits for a `continue` event so
 * that workers and clients are heard in between.
 */
const RELEASES_PER_EVENT = 50_000;

export class SchedulerState {
  readonly config: SchedulerConfig;
  readonly tasks = new Map<string, TaskState>();
  readonly workers = new Map<string, WorkerState>();
  readonly clients = new Map<string, ClientState>();
  private readonly byAddress = new Map<string, WorkerState>();
  private readonly groups = new Map<string, TaskGroup>();
  private readonly fnByRef = new Map<string, FnEntry>();
  private readonly queue = new Heap<TaskState>(before);
  private readonly noWorker = new Set<TaskState>();
  /**
   * Tasks sent to a worker, by run number. Results are matched here, in a
   * map of the tasks in flight, rather than in the table of every key.
   */
  private readonly byRun = new Map<number, TaskState>();
  /** Clients subscribed to each task-event topic. */
  private readonly subscribers = new Map<string, ClientState[]>();
  private outbox = new Outbox();
  private close: { id: string; reason: string }[] = [];
  private logs: LogRecord[] = [];
  /** Tasks whose need count dropped to zero: release (and maybe forget) them. */
  private releaseQ: TaskState[] = [];
  private orderCounter = 0;
  private runCounter = 0;
  /** Average run time over all tasks: the guess for a kind never measured. */
  private globalDuration = -1;
  private now = 0;
  /** When the last event carrying the time came (-1: none yet). */
  private lastEventAt = -1;
  /** Time the scheduler was stalled, summed (see stallThresholdMs). */
  private stalledMs = 0;

  constructor(config: Partial<SchedulerConfig> = {}) {
    this.config = schedulerConfigSchema().parse(config);
  }

  // ------------------------------------------------------------------ events

  handle(ev: SchedulerEvent): void {
    switch (ev.type) {
      case 'client-connected':
        this.clients.set(ev.client, new ClientState(ev.client));
        break;
      case 'client-disconnected':
        this.removeClient(ev.client);
        break;
      case 'client-message':
        this.clientMessage(ev.client, ev.msg);
        break;
      case 'worker-connected':
        this.clock(ev.now);
        this.addWorker(ev.worker, ev.info);
        break;
      case 'worker-disconnected':
        this.removeWorker(ev.worker, ev.reason);
        break;
      case 'worker-message':
        this.clock(ev.now);
        this.workerMessage(ev.worker, ev.msg);
        break;
      case 'tick':
        this.clock(ev.now);
        this.tick();
        break;
      case 'continue':
        break;
    }
    this.drainReleases();
  }

  /** Work is left over (a long cascade of releases): send a `continue` event once other events are handled. */
  get hasPendingWork(): boolean {
    return this.releaseQ.length > 0;
  }

  /** Advances the clock; a gap beyond stallThresholdMs is time the scheduler could not hear anyone. */
  private clock(now: number): void {
    if (this.lastEventAt >= 0) this.stalledMs += Math.max(0, now - this.lastEventAt - this.config.stallThresholdMs);
    this.lastEventAt = now;
    this.now = now;
  }

  /** How long a worker has been silent while the scheduler was running to hear it. */
  private silence(w: WorkerState): number {
    return this.now - w.lastSeen - (this.stalledMs - w.stalledAtSeen);
  }

  /** What to do now: messages to send (root-task queue filled first), closes, logs. */
  takeInstructions(): Instructions {
    this.fillWorkers();
    this.drainReleases();
    const out = { messages: this.outbox.drain(), close: this.close, logs: this.logs };
    this.close = [];
    this.logs = [];
    return out;
  }

  // ------------------------------------------------------------------ clients

  private clientMessage(id: string, msg: ClientToScheduler): void {
    const c = this.clients.get(id);
    if (!c) return;
    switch (msg.op) {
      case 'update-graph':
        this.updateGraph(c, msg);
        // The last part of a submission (or the only one): what earlier parts held is let go, whether this part was taken or not.
        if (!msg.more) this.dropHolds(c);
        break;
      case 'release':
        for (const key of msg.keys) {
          const ts = this.tasks.get(key);
          if (ts && removeWanter(ts, c)) {
            c.wants--;
            if (!isNeeded(ts)) this.releaseQ.push(ts);
          }
        }
        break;
      case 'want': {
        const missing: string[] = [];
        for (const key of msg.keys) {
          const ts = this.tasks.get(key);
          if (!ts) missing.push(key);
          else this.want(c, ts);
        }
        this.outbox.push(c.id, { op: 'want-reply', id: msg.id, missing });
        break;
      }
      case 'scattered':
        this.scattered(c, msg.id, msg.keys, msg.nbytes, msg.worker);
        break;
      case 'who-has': {
        const addresses: string[] = [];
        const index = new Map<WorkerState, number>();
        const holder = msg.keys.map((k) => {
          const who = this.tasks.get(k)?.whoHas;
          if (!who || who.length === 0) return -1;
          const w = who[who.length === 1 ? 0 : Math.floor(Math.random() * who.length)] as WorkerState;
          let i = index.get(w);
          if (i === undefined) {
            i = addresses.push(w.address) - 1;
            index.set(w, i);
          }
          return i;
        });
        this.outbox.push(c.id, { op: 'who-has-reply', id: msg.id, addresses, holder });
        break;
      }
      case 'workers':
        this.outbox.push(c.id, { op: 'workers-reply', id: msg.id, workers: this.workerSummaries() });
        break;
      case 'subscribe':
        for (const t of msg.topics) this.subscribe(c, t);
        break;
      case 'unsubscribe':
        for (const t of msg.topics) this.unsubscribe(c, t);
        break;
    }
  }

  private subscribe(c: ClientState, topic: string): void {
    c.topics ??= new Set();
    if (c.topics.has(topic)) return;
    c.topics.add(topic);
    const list = this.subscribers.get(topic);
    if (list) list.push(c);
    else this.subscribers.set(topic, [c]);
  }

  private unsubscribe(c: ClientState, topic: string): void {
    if (!c.topics?.delete(topic)) return;
    const list = this.subscribers.get(topic);
    if (!list) return;
    const rest = list.filter((x) => x !== c);
    if (rest.length > 0) this.subscribers.set(topic, rest);
    else this.subscribers.delete(topic);
  }

  /** Passes task events on to the clients subscribed to their topics; an event nobody listens to is dropped. */
  private taskEvents(w: WorkerState, topics: readonly string[], data: readonly Uint8Array[]): void {
    if (topics.length !== data.length) {
      this.logs.push({ level: 'warn', msg: 'task events dropped: topics and data differ in length', data: { worker: w.name, topics: topics.length, data: data.length } });
      return;
    }
    for (let i = 0; i < topics.length; i++) {
      const subs = this.subscribers.get(topics[i] as string);
      if (subs) for (const c of subs) this.outbox.event(c.id, topics[i] as string, data[i] as Uint8Array);
    }
  }

  private removeClient(id: string): void {
    const c = this.clients.get(id);
    if (!c) return;
    this.clients.delete(id);
    this.dropHolds(c);
    for (const t of c.topics ?? []) this.unsubscribe(c, t);
    // Tasks do not list their wanters' clients: find this one's by scanning (rare).
    if (c.wants > 0) {
      for (const ts of this.tasks.values()) {
        if (removeWanter(ts, c) && !isNeeded(ts)) this.releaseQ.push(ts);
      }
    }
    c.wants = 0;
  }

  private want(c: ClientState, ts: TaskState): void {
    this.addWant(c, ts);
    if (ts.state === 'memory') this.tellInMemory(c, ts, (ts.whoHas[0] as WorkerState).address);
    else if (ts.state === 'erred' && ts.error) this.outbox.push(c.id, { op: 'erred', key: ts.key, error: ts.error });
    else if (ts.state === 'released' && isNeeded(ts)) this.ensureComputable(ts);
  }

  /**
   * Adds a client's graph. Validates it whole first (column consistency,
   * conflicting keys, missing dependencies, cycles): an invalid graph changes
   * nothing and is rejected with the keys at fault. One map lookup per key
   * and per dependency: new tasks enter the table as they are read and leave
   * it again if the graph is rejected.
   *
   * Each pass over the tasks is a method of its own: a cold process compiles
   * each loop separately (on-stack replacement compiles the whole enclosing
   * function), and a part without dependencies, the usual large submission,
   * skips the passes that only concern dependencies.
   */
  private updateGraph(c: ClientState, g: GraphMsg): void {
    const id = g.id;
    const bad = checkGraphColumns(g);
    if (bad) return this.reject(c, id, `malformed graph: ${bad}`, []);
    const fns = g.fnTable.map((def) => this.internFn(def));
    const depStart = new Int32Array(g.keys.length + 1);
    if (g.deps.length > 0) prefixSums(g.depCounts, depStart);
    const read = this.readTasks(g, fns, depStart);
    const { at, created } = read;
    const rollback = (): void => {
      for (const ts of created) this.tasks.delete(ts.key);
    };
    if (read.conflicts.length > 0) {
      rollback();
      return this.reject(c, id, `keys submitted before (or twice here) with a different definition: ${list(read.conflicts)}; use new keys for different work`, read.conflicts);
    }
    const wantTs: TaskState[] = [];
    const missing: string[] = [];
    for (const k of g.wantKeys) {
      const ts = this.tasks.get(k);
      if (ts) wantTs.push(ts);
      else missing.push(`(wanted) ${k}`);
    }
    const problem = g.deps.length > 0 ? this.linkGraph(g, created, depStart, missing) : missingProblem(missing);
    if (problem) {
      rollback();
      return this.reject(c, id, problem.message, problem.keys);
    }
    if (g.deps.length > 0) {
      for (const ts of created) ts.order = -1;
      this.orderCounter = assignGraphOrder(created, this.orderCounter);
      created.sort((a, b) => a.order - b.order);
    } else {
      // No dependencies: the graph order is the submission order.
      for (const ts of created) ts.order = this.orderCounter++;
    }
    this.admit(c, g, at, created, read.reused, wantTs);
    this.outbox.push(c.id, { op: 'graph-ok', id });
  }

  /**
   * Creates the graph's new tasks (numbered FRESH - i in `order` until
   * ordered) and checks the ones it shares with known tasks: the same key
   * must mean the same function, arguments and dependencies.
   */
  private readTasks(g: GraphMsg, fns: readonly FnEntry[], depStart: Int32Array): { at: TaskState[]; created: TaskState[]; conflicts: string[]; reused: number[] } {
    const n = g.keys.length;
    const keys = g.keys;
    const fnCol = g.fn;
    const argEnds = g.argEnds;
    const extra = new Map<number, TaskExtra>();
    for (const e of g.extra) extra.set(e.i, e);
    const at: TaskState[] = new Array(n);
    const created: TaskState[] = [];
    const conflicts: string[] = [];
    const reused: number[] = [];
    // The arguments decode as a view into the received frame; the tasks keep a copy of their own, so the frame (keys, dependencies and all) can go.
    const args = g.args.byteLength === g.args.buffer.byteLength ? g.args : Uint8Array.prototype.slice.call(g.args);
    for (let i = 0; i < n; i++) {
      const key = keys[i] as string;
      const fn = fns[fnCol[i] as number] as FnEntry;
      const existing = this.tasks.get(key);
      if (existing) {
        at[i] = existing;
        reused.push(i);
        if (!sameTask(g, depStart, i, fn, existing)) conflicts.push(key);
        continue;
      }
      const e = extra.size === 0 ? undefined : extra.get(i);
      const res = e?.resources && Object.keys(e.resources).length > 0 ? e.resources : null;
      const ts = newTask(key, fn, args, i === 0 ? 0 : (argEnds[i - 1] as number), argEnds[i] as number, fn.group, e?.priority ?? 0, e?.retries ?? 0, res, e?.workers && e.workers.length > 0 ? e.workers : null);
      ts.order = FRESH - i;
      this.tasks.set(key, ts);
      at[i] = ts;
      created.push(ts);
    }
    return { at, created, conflicts, reused };
  }

  /**
   * Resolves the new tasks' dependencies, checks for cycles and links them.
   * Returns the reason to reject the graph (nothing linked then), or null.
   * `missing` already lists wanted keys that do not exist.
   */
  private linkGraph(g: GraphMsg, created: readonly TaskState[], depStart: Int32Array, missing: string[]): { message: string; keys: string[] } | null {
    const depTs: (TaskState | undefined)[] = new Array(g.deps.length);
    for (const ts of created) {
      const i = FRESH - ts.order;
      for (let k = depStart[i] as number; k < (depStart[i + 1] as number); k++) {
        const d = this.tasks.get(g.deps[k] as string);
        depTs[k] = d;
        if (!d) missing.push(`${ts.key} -> ${g.deps[k]}`);
      }
    }
    const unknown = missingProblem(missing);
    if (unknown) return unknown;
    const isFresh = new Uint8Array(g.keys.length);
    for (const ts of created) isFresh[FRESH - ts.order] = 1;
    const cycle = findCycle(g.keys.length, isFresh, depStart, (k) => {
      const d = depTs[k];
      return d !== undefined && d.order <= FRESH ? FRESH - d.order : -1;
    });
    if (cycle) {
      const keys = cycle.map((i) => g.keys[i] as string);
      return { message: `the graph has a cycle: ${keys.join(' -> ')}`, keys };
    }
    for (const ts of created) {
      const i = FRESH - ts.order;
      const from = depStart[i] as number;
      const to = depStart[i + 1] as number;
      if (from === to) continue;
      ts.deps = new Array(to - from);
      for (let k = from; k < to; k++) {
        const d = depTs[k] as TaskState;
        ts.deps[k - from] = d;
        addDependent(d, ts);
        d.liveDependents++;
      }
    }
    return null;
  }

  /** A valid, linked and ordered graph: its tasks start waiting, its wanted keys are held. */
  private admit(c: ClientState, g: GraphMsg, at: readonly TaskState[], created: readonly TaskState[], reused: readonly number[], wantTs: readonly TaskState[]): void {
    if (g.more) {
      // More parts follow, whose tasks may depend on these: held until the last part (one count of `waiters` each).
      const held = (c.held ??= []);
      for (const ts of created) {
        ts.waiters++;
        held.push(ts);
      }
    }
    for (let j = 0; j < g.wants.length; j++) this.addWant(c, at[g.wants[j] as number] as TaskState, g.tickets[j] as number);
    for (const ts of wantTs) this.addWant(c, ts);
    for (const ts of created) this.enterWaiting(ts);
    // Existing tasks wanted again: report where they stand.
    if (reused.length > 0) {
      const wanted = new Uint8Array(at.length);
      for (const i of g.wants) wanted[i] = 1;
      for (const i of reused) if (wanted[i]) this.want(c, at[i] as TaskState);
    }
    for (const ts of wantTs) this.want(c, ts);
    // Fresh tasks nobody wants and nothing depends on are dropped at once.
    for (const ts of created) if (!isNeeded(ts)) this.releaseQ.push(ts);
  }

  /** Lets go of the tasks a client's earlier parts held (see admit). */
  private dropHolds(c: ClientState): void {
    const held = c.held;
    if (!held) return;
    c.held = null;
    for (const ts of held) if (--ts.waiters === 0 && !isNeeded(ts)) this.releaseQ.push(ts);
  }

  /** Tells a client its key is in memory: by ticket if it is the wanter that gave one, else by key. */
  private tellInMemory(c: ClientState, ts: TaskState, address: string): void {
    this.outbox.inMemory(c.id, ts.key, ts.wanter === c ? ts.ticket : -1, address);
  }

  /** `ticket`: the client's ticket for the key (-1: none), kept while it is the first wanter. */
  private addWant(c: ClientState, ts: TaskState, ticket = -1): void {
    if (addWanter(ts, c)) c.wants++;
    if (ticket >= 0 && ts.wanter === c) ts.ticket = ticket;
  }

  private internFn(def: FnDef): FnEntry {
    const k = `${def[0]}:${def[1]}`;
    let f = this.fnByRef.get(k);
    if (!f) {
      f = new FnEntry(this.fnByRef.size, def, this.group(def[2] || 'task'));
      this.fnByRef.set(k, f);
    }
    return f;
  }

  private reject(c: ClientState, id: number, message: string, keys: string[]): void {
    this.outbox.push(c.id, { op: 'graph-rejected', id, error: { name: 'GraphError', message }, keys: keys.slice(0, 100) });
    this.logs.push({ level: 'warn', msg: 'graph rejected', data: { client: c.id, reason: message } });
  }

  private scattered(c: ClientState, id: number, keys: string[], nbytes: number[], address: string): void {
    const w = this.byAddress.get(address);
    if (!w) {
      this.outbox.push(c.id, { op: 'scattered-ok', id, error: `no worker at ${address}` });
      return;
    }
    const bad: string[] = [];
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as string;
      let ts = this.tasks.get(key);
      if (ts && ts.fn !== null) {
        bad.push(key);
        continue;
      }
      if (!ts) {
        ts = newTask(key, null, null, 0, 0, this.group('scatter'), 0, 0, null, null);
        this.tasks.set(key, ts);
      }
      if (!ts.whoHas.includes(w)) {
        addHolder(ts, w);
        w.stored++;
        w.storedBytes += nbytes[i] ?? 0;
      }
      ts.nbytes = nbytes[i] ?? 0;
      if (ts.state !== 'memory') this.toMemory(ts);
      this.addWant(c, ts);
    }
    const error = bad.length > 0 ? `keys already used by computed tasks: ${list(bad)}` : undefined;
    this.outbox.push(c.id, error ? { op: 'scattered-ok', id, error } : { op: 'scattered-ok', id });
  }

  // ------------------------------------------------------------------ workers

  private addWorker(id: string, info: WorkerInfo): void {
    const w = new WorkerState(id, info.name, info.address, info.nthreads, info.resources, info.pid, this.now);
    w.stalledAtSeen = this.stalledMs;
    this.workers.set(id, w);
    this.byAddress.set(info.address, w);
    this.logs.push({ level: 'info', msg: 'worker joined', data: { worker: info.name, address: info.address, nthreads: info.nthreads, resources: info.resources } });
    // Tasks that had nowhere to go may fit now.
    for (const ts of [...this.noWorker]) {
      if (this.validWorker(ts, w)) {
        this.noWorker.delete(ts);
        this.place(ts);
      }
    }
  }

  private removeWorker(id: string, reason: string): void {
    const w = this.workers.get(id);
    if (!w) return;
    this.workers.delete(id);
    this.byAddress.delete(w.address);
    this.logs.push({ level: 'warn', msg: 'worker removed', data: { worker: w.name, address: w.address, reason, processing: w.processing, stored: w.stored } });

    // What it was running (tasks in flight) and what it held (a scan: workers leave rarely).
    const lost: TaskState[] = [];
    const processing: TaskState[] = [];
    for (const ts of this.byRun.values()) if (ts.processingOn === w) processing.push(ts);
    for (const ts of this.tasks.values()) {
      if (!removeHolder(ts, w)) continue;
      if (ts.whoHas.length === 0 && ts.state === 'memory') lost.push(ts);
    }
    w.stored = 0;
    for (const ts of lost) this.loseData(ts);
    w.processing = 0;
    // Blame the tasks the worker said it was running; if it said nothing yet, all of them.
    const anyExecuting = processing.some((ts) => ts.executing);
    for (const ts of processing) {
      if (ts.processingOn !== w) continue;
      ts.processingOn = null;
      this.byRun.delete(ts.run);
      if (!anyExecuting || ts.executing) ts.suspicious++;
      ts.executing = false;
      if (ts.suspicious >= this.config.allowedFailures) {
        this.logs.push({ level: 'error', msg: 'task killed too many workers', data: { key: ts.key, workersDied: ts.suspicious } });
        this.markErred(ts, {
          name: 'KilledWorkerError',
          message: `task ${ts.key} was running on ${ts.suspicious} workers that died (the last: ${w.name}, ${reason}); weft stopped retrying it so it cannot kill another. Check it for crashes or memory use.`,
        });
      } else {
        this.returnToWaiting(ts);
      }
    }
  }

  private workerMessage(id: string, msg: WorkerToScheduler): void {
    const w = this.workers.get(id);
    if (!w) return;
    w.lastSeen = this.now;
    w.stalledAtSeen = this.stalledMs;
    switch (msg.op) {
      case 'finished':
        for (let i = 0; i < msg.keys.length; i++) {
          this.taskFinished(w, msg.keys[i] as string, msg.runs[i] ?? -1, msg.nbytes[i] ?? 0, msg.durations[i] ?? 0);
        }
        break;
      case 'executing':
        for (let i = 0; i < msg.keys.length; i++) {
          const ts = this.byRun.get(msg.runs[i] as number);
          if (ts && ts.key === msg.keys[i] && ts.processingOn === w) ts.executing = true;
        }
        break;
      case 'erred':
        this.taskErred(w, msg.key, msg.run, msg.error);
        break;
      case 'missing':
        this.missingData(w, msg.key, msg.run, msg.dep, msg.holders);
        break;
      case 'heartbeat':
        w.memory = msg.memory;
        break;
      case 'task-events':
        this.taskEvents(w, msg.topics, msg.data);
        break;
    }
  }

  private tick(): void {
    for (const w of this.workers.values()) {
      const silent = this.silence(w);
      if (silent > this.config.heartbeatTimeoutMs) {
        this.close.push({ id: w.id, reason: `no heartbeat for ${Math.round(silent / 1000)} s` });
        this.removeWorker(w.id, 'heartbeat timeout');
      }
    }
    if (this.noWorker.size > 0) {
      for (const ts of [...this.noWorker]) {
        if (this.now - ts.noWorkerSince >= this.config.noWorkerTimeoutMs) {
          this.noWorker.delete(ts);
          this.markErred(ts, { name: 'NoWorkerError', message: `task ${ts.key} needs ${describeNeeds(ts)} and no worker offered it for ${Math.round(this.config.noWorkerTimeoutMs / 1000)} s` });
        }
      }
    }
  }

  // ------------------------------------------------------------------ task results

  private taskFinished(w: WorkerState, key: string, run: number, nbytes: number, duration: number): void {
    const ts = this.byRun.get(run);
    if (!ts || ts.key !== key || ts.state !== 'processing' || ts.processingOn !== w) {
      // A result we no longer want (cancelled, rescheduled, forgotten): drop it there.
      const known = this.tasks.get(key);
      if (!(known && known.state === 'memory' && known.whoHas.includes(w))) this.outbox.key(w.id, 'free', key);
      return;
    }
    this.byRun.delete(run);
    ts.group.record(duration);
    this.globalDuration = this.globalDuration < 0 ? duration : this.globalDuration + (duration - this.globalDuration) * 0.05;
    w.processing--;
    w.occupancy = Math.max(0, w.occupancy - ts.expected);
    ts.processingOn = null;
    ts.executing = false;
    ts.nbytes = nbytes;
    addHolder(ts, w);
    w.stored++;
    w.storedBytes += nbytes;
    this.toMemory(ts);
  }

  /** A task's data is now held somewhere: tell wanters, wake dependents. */
  private toMemory(ts: TaskState): void {
    this.setState(ts, 'memory');
    if (ts.wanter) {
      const address = (ts.whoHas[0] as WorkerState).address;
      // No closure per task on this hot path (forEachWanter would make one).
      this.tellInMemory(ts.wanter, ts, address);
      if (ts.moreWanters) for (const c of ts.moreWanters) this.tellInMemory(c, ts, address);
    }
    for (const d of ts.dependents) {
      if (d.state === 'waiting' && --d.waitingOn === 0) this.makeReady(d);
    }
    if (!isNeeded(ts)) this.releaseQ.push(ts);
  }

  private taskErred(w: WorkerState, key: string, run: number, error: SerializedError): void {
    const ts = this.tasks.get(key);
    if (!ts || ts.state !== 'processing' || ts.processingOn !== w || ts.run !== run) return;
    this.detachFromWorker(ts);
    if (ts.retriesLeft > 0) {
      ts.retriesLeft--;
      this.logs.push({ level: 'info', msg: 'retrying task', data: { key, retriesLeft: ts.retriesLeft, error: error.message } });
      this.returnToWaiting(ts);
      return;
    }
    this.markErred(ts, error);
  }

  private missingData(w: WorkerState, key: string, run: number, depKey: string, holders: string[]): void {
    const ts = this.tasks.get(key);
    if (!ts || ts.state !== 'processing' || ts.processingOn !== w || ts.run !== run) return;
    const dep = this.tasks.get(depKey);
    if (dep) {
      for (const addr of holders) {
        const hw = this.byAddress.get(addr);
        if (hw && removeHolder(dep, hw)) {
          hw.stored--;
          hw.storedBytes = Math.max(0, hw.storedBytes - dep.nbytes);
        }
      }
      this.logs.push({ level: 'warn', msg: 'worker could not fetch a dependency', data: { key, dep: depKey, worker: w.name, holders } });
      if (dep.state === 'memory' && dep.whoHas.length === 0) this.loseData(dep);
    }
    if (ts.state === 'processing' && ts.processingOn === w) {
      this.detachFromWorker(ts);
      this.outbox.key(w.id, 'free', ts.key);
      this.returnToWaiting(ts);
    }
  }

  // ------------------------------------------------------------------ transitions

  /** Sets a state, keeping every dependency's `waiters` count exact. */
  private setState(ts: TaskState, next: TaskStatus): void {
    const was = needsDeps(ts.state);
    const now = needsDeps(next);
    ts.state = next;
    if (was === now) return;
    for (const d of ts.deps) {
      if (now) d.waiters++;
      else if (--d.waiters === 0) this.releaseQ.push(d);
    }
  }

  /**
   * A new (or recomputed) task starts waiting for its dependencies. Released
   * dependencies go on `released` when given (ensureComputable's own stack:
   * a long chain must not recurse once per link), else are made computable here.
   */
  private enterWaiting(ts: TaskState, released?: TaskState[]): void {
    let missing = 0;
    let failed: TaskState | null = null;
    for (const d of ts.deps) {
      if (d.state === 'erred') failed = d;
      else if (d.state !== 'memory') missing++;
    }
    if (failed) {
      this.markErred(ts, dependencyError(failed));
      return;
    }
    this.setState(ts, 'waiting');
    ts.waitingOn = missing;
    if (missing === 0) {
      this.makeReady(ts);
      return;
    }
    for (const d of ts.deps) {
      if (d.state !== 'released') continue;
      if (released) released.push(d);
      else this.ensureComputable(d);
    }
  }

  /** A released task is needed again: compute it (and whatever it needs). */
  private ensureComputable(root: TaskState): void {
    const stack = [root];
    while (stack.length > 0) {
      const ts = stack.pop() as TaskState;
      if (ts.state !== 'released') continue;
      if (ts.fn === null) {
        this.markErred(ts, { name: 'DataLostError', message: `scattered data ${ts.key} was lost with the worker that held it; scatter it again` });
        continue;
      }
      this.enterWaiting(ts, stack);
    }
  }

  /** All dependencies are in memory: queue a root task, or place it now. */
  private makeReady(ts: TaskState): void {
    if (!hasRestrictions(ts) && this.isRootish(ts)) {
      this.setState(ts, 'queued');
      if (!ts.inQueue) {
        ts.inQueue = true;
        this.queue.push(ts);
      }
      return;
    }
    this.place(ts);
  }

  /**
   * Root-ish tasks have no data to be near: no dependencies, or only a few
   * that are shared by many tasks (a broadcast value).
   */
  private isRootish(ts: TaskState): boolean {
    if (ts.deps.length === 0) return true;
    if (ts.deps.length > 4) return false;
    for (const d of ts.deps) if (d.dependents.length < 16) return false;
    return true;
  }

  private place(ts: TaskState): void {
    const w = this.chooseWorker(ts);
    if (!w) {
      if (ts.state !== 'no-worker') {
        this.setState(ts, 'no-worker');
        ts.noWorkerSince = this.now;
        this.noWorker.add(ts);
        const reason = `task ${ts.key} needs ${describeNeeds(ts)}, which no connected worker has; it waits ${Math.round(this.config.noWorkerTimeoutMs / 1000)} s for one to join, then errs`;
        this.logs.push({ level: 'warn', msg: 'no worker can run task', data: { key: ts.key, needs: describeNeeds(ts) } });
        for (const c of this.clients.values()) this.outbox.push(c.id, { op: 'no-worker', keys: [ts.key], reason });
      }
      return;
    }
    this.noWorker.delete(ts);
    this.sendCompute(ts, w);
  }

  /**
   * The worker where the task can start soonest: its queued work per thread
   * plus the time to fetch the dependency bytes it does not hold.
   */
  private chooseWorker(ts: TaskState): WorkerState | null {
    let best: WorkerState | null = null;
    let bestCost = Infinity;
    for (const w of this.workers.values()) {
      if (w.closing || !this.validWorker(ts, w)) continue;
      let missingBytes = 0;
      for (const d of ts.deps) if (!d.whoHas.includes(w)) missingBytes += d.nbytes;
      const busy = w.processing < w.nthreads ? 0 : w.occupancy / w.nthreads;
      const cost = busy + missingBytes / this.config.bandwidth;
      if (cost < bestCost || (cost === bestCost && best !== null && w.processing < best.processing)) {
        best = w;
        bestCost = cost;
      }
    }
    return best;
  }

  private validWorker(ts: TaskState, w: WorkerState): boolean {
    if (ts.workers && !ts.workers.includes(w.name) && !ts.workers.includes(w.address)) return false;
    if (ts.resources) {
      for (const r in ts.resources) if ((w.resources[r] ?? 0) < (ts.resources[r] as number)) return false;
    }
    return true;
  }

  private expectedDuration(ts: TaskState): number {
    if (ts.group.duration >= 0) return ts.group.duration;
    return this.globalDuration >= 0 ? this.globalDuration : this.config.defaultDurationSeconds;
  }

  /**
   * Sends a task to a worker, and then, speculatively, the chain behind it:
   * while a task's only dependent waits for nothing else and would run on
   * this worker anyway, it goes along now and the worker starts it the moment
   * the result exists, with no round trip through the scheduler. A task that
   * leaves the worker without a result takes its speculative dependents back
   * with it (see detachFromWorker).
   */
  private sendCompute(ts: TaskState, w: WorkerState): void {
    let next: TaskState | null = ts;
    while (next) {
      this.sendOne(next, w);
      next = this.speculativeDependent(next, w);
    }
  }

  private speculativeDependent(ts: TaskState, w: WorkerState): TaskState | null {
    if (ts.dependents.length !== 1) return null;
    const d = ts.dependents[0] as TaskState;
    if (d.state !== 'waiting' || d.waitingOn !== 1 || hasRestrictions(d) || d.fn === null) return null;
    for (const dep of d.deps) if (dep !== ts && !(dep.state === 'memory' && dep.whoHas.includes(w))) return null;
    return d;
  }

  private sendOne(ts: TaskState, w: WorkerState): void {
    this.setState(ts, 'processing');
    ts.processingOn = w;
    ts.run = ++this.runCounter;
    this.byRun.set(ts.run, ts);
    ts.executing = false;
    ts.expected = this.expectedDuration(ts);
    w.occupancy += ts.expected;
    w.processing++;
    const fn = ts.fn as FnEntry;
    if (!w.knownFns.has(fn.id)) {
      w.knownFns.add(fn.id);
      this.outbox.push(w.id, { op: 'fns', ids: [fn.id], defs: [fn.def] });
    }
    const b = this.outbox.computeBatch(w.id);
    b.keys.push(ts.key);
    b.runs.push(ts.run);
    b.fns.push(fn.id);
    b.addArgs(ts.argBuf as Uint8Array, ts.argStart, ts.argEnd);
    b.orders.push(ts.order);
    b.priorities.push(ts.priority);
    b.depCounts.push(ts.deps.length);
    for (const d of ts.deps) {
      b.deps.push(d.key);
      // A dependency still running here (speculation): the worker waits for it locally.
      b.who.push(d.state === 'memory' ? d.whoHas.map((h) => h.address) : [w.address]);
      b.sizes.push(d.nbytes);
    }
    if (ts.resources) b.resources.push([b.keys.length - 1, ts.resources]);
  }

  /**
   * Hands queued root tasks to workers with free slots: one task per worker
   * per pass, least busy first, so a short queue is spread, not piled on one.
   */
  private fillWorkers(): void {
    if (this.queue.size === 0 || this.workers.size === 0) return;
    let open = [...this.workers.values()].filter((w) => !w.closing);
    open.sort((a, b) => a.processing / a.nthreads - b.processing / b.nthreads);
    while (open.length > 0 && this.queue.size > 0) {
      const still: WorkerState[] = [];
      for (const w of open) {
        const head = this.nextQueued();
        if (!head) return;
        if (w.processing >= this.slots(w, head)) continue;
        this.queue.pop();
        head.inQueue = false;
        this.sendCompute(head, w);
        still.push(w);
      }
      open = still;
    }
  }

  /** The queue's head, skipping entries no longer queued (lazy removal). */
  private nextQueued(): TaskState | undefined {
    while (this.queue.size > 0) {
      const head = this.queue.peek() as TaskState;
      if (head.state === 'queued') return head;
      this.queue.pop();
      head.inQueue = false;
    }
    return undefined;
  }

  /**
   * How many tasks a worker may hold: about `queueTargetSeconds` of work per
   * thread, at least ceil(1.1 × threads). Short tasks get a deep queue so the
   * round trip to the scheduler never idles a thread; long or unknown ones a
   * shallow one, so a worker never takes on far more than it can run.
   */
  private slots(w: WorkerState, next: TaskState): number {
    const d = next.group.duration;
    let perThread = 1.1;
    if (d >= 0) {
      perThread = this.config.queueTargetSeconds / (d + this.config.taskOverheadSeconds);
      perThread = Math.min(this.config.maxQueuedPerThread, Math.max(1.1, perThread));
    }
    return Math.ceil(w.nthreads * perThread);
  }

  /** Takes a processing task off its worker's books (the worker is told separately). */
  private detachFromWorker(ts: TaskState): void {
    const w = ts.processingOn;
    if (!w) return;
    w.processing--;
    w.occupancy = Math.max(0, w.occupancy - ts.expected);
    ts.processingOn = null;
    this.byRun.delete(ts.run);
    ts.executing = false;
    // Dependents sent along speculatively now wait for a result that will not come from here.
    let t: TaskState = ts;
    while (t.dependents.length === 1) {
      const d = t.dependents[0] as TaskState;
      if (d.state !== 'processing' || d.processingOn !== w) break;
      w.processing--;
      w.occupancy = Math.max(0, w.occupancy - d.expected);
      d.processingOn = null;
      this.byRun.delete(d.run);
      d.executing = false;
      this.outbox.key(w.id, 'free', d.key);
      d.state = 'waiting'; // both states need their deps: no count changes
      d.waitingOn = missingInputs(d);
      t = d;
    }
  }

  /** A task that was processing goes back to wait for (or recompute) its inputs. */
  private returnToWaiting(ts: TaskState): void {
    const missing = missingInputs(ts);
    if (missing === 0) {
      this.makeReady(ts);
      return;
    }
    this.setState(ts, 'waiting');
    ts.waitingOn = missing;
    for (const d of ts.deps) {
      if (d.state === 'erred') {
        this.markErred(ts, dependencyError(d));
        return;
      }
      if (d.state === 'released') this.ensureComputable(d);
    }
  }

  /** The last copy of a result is gone. Recompute it if anything still needs it. */
  private loseData(ts: TaskState): void {
    this.setState(ts, 'released');
    ts.nbytes = 0;
    for (const d of ts.dependents) {
      if (d.state === 'waiting') d.waitingOn++;
      else if (d.state === 'queued' || d.state === 'no-worker') {
        this.noWorker.delete(d);
        d.state = 'waiting'; // both states need their deps: no count changes
        d.waitingOn = 1;
      } else if (d.state === 'processing') {
        const w = d.processingOn;
        this.detachFromWorker(d);
        if (w) this.outbox.key(w.id, 'free', d.key);
        d.state = 'waiting';
        d.waitingOn = missingInputs(d);
      }
    }
    forEachWanter(ts, (c) => this.outbox.key(c.id, 'lost', ts.key));
    this.logs.push({ level: 'info', msg: 'result lost with its worker', data: { key: ts.key, recompute: isNeeded(ts) } });
    if (isNeeded(ts)) this.ensureComputable(ts);
    else this.releaseQ.push(ts);
  }

  /** Errs a task and, transitively, everything waiting on it. */
  private markErred(root: TaskState, error: SerializedError): void {
    const stack: [TaskState, SerializedError][] = [[root, error]];
    while (stack.length > 0) {
      const [ts, err] = stack.pop() as [TaskState, SerializedError];
      if (ts.state === 'erred' || ts.state === 'forgotten' || ts.state === 'memory') continue;
      if (ts.state === 'processing') {
        const w = ts.processingOn;
        this.detachFromWorker(ts);
        if (w) this.outbox.key(w.id, 'free', ts.key);
      }
      this.noWorker.delete(ts);
      ts.error = err;
      this.setState(ts, 'erred');
      forEachWanter(ts, (c) => this.outbox.push(c.id, { op: 'erred', key: ts.key, error: err }));
      const forDependents = dependencyError(ts);
      for (const d of ts.dependents) {
        if (needsDeps(d.state)) stack.push([d, forDependents]);
      }
      if (!isNeeded(ts)) this.releaseQ.push(ts);
    }
  }

  /** Releases tasks no longer needed and forgets those nothing refers to; at most RELEASES_PER_EVENT per call. */
  private drainReleases(): void {
    for (let budget = RELEASES_PER_EVENT; this.releaseQ.length > 0 && budget > 0; budget--) {
      const ts = this.releaseQ.pop() as TaskState;
      if (isNeeded(ts) || ts.state === 'forgotten') continue;
      switch (ts.state) {
        case 'memory':
          for (const w of ts.whoHas) {
            this.outbox.key(w.id, 'free', ts.key);
            w.stored--;
            w.storedBytes = Math.max(0, w.storedBytes - ts.nbytes);
          }
          clearHolders(ts);
          this.setState(ts, 'released');
          break;
        case 'processing': {
          const w = ts.processingOn;
          this.detachFromWorker(ts);
          if (w) this.outbox.key(w.id, 'free', ts.key);
          this.setState(ts, 'released');
          break;
        }
        case 'waiting':
        case 'queued':
        case 'no-worker':
          this.noWorker.delete(ts);
          this.setState(ts, 'released');
          break;
      }
      if (ts.liveDependents === 0 && (ts.state === 'released' || ts.state === 'erred')) {
        ts.state = 'forgotten';
        this.tasks.delete(ts.key);
        for (const d of ts.deps) {
          if (--d.liveDependents === 0) this.releaseQ.push(d);
        }
      }
    }
  }

  // ------------------------------------------------------------------ helpers

  private group(name: string): TaskGroup {
    let g = this.groups.get(name);
    if (!g) {
      g = new TaskGroup(name);
      this.groups.set(name, g);
    }
    return g;
  }

  workerSummaries(): WorkerSummary[] {
    return [...this.workers.values()].map((w) => ({
      name: w.name,
      address: w.address,
      nthreads: w.nthreads,
      resources: w.resources,
      processing: w.processing,
      stored: w.stored,
      storedBytes: w.storedBytes,
      memory: w.memory,
      pid: w.pid,
    }));
  }

  /**
   * For tests: a description of the first broken bookkeeping invariant, or
   * null. O(tasks). The counts it checks are the ones every transition keeps:
   *
   * - a processing task is in flight under its run, on a live worker;
   * - each worker's `processing` is the number of tasks processing on it;
   * - `waiters` is the number of dependents in a state that needs this task
   *   (waiting, queued, no-worker, processing), plus one per client's
   *   submission in parts that holds it;
   * - `liveDependents` is the number of dependents not forgotten;
   * - a task in memory has a holder, and every holder is a live worker;
   * - a waiting task waits on exactly its dependencies not in memory.
   */
  checkInvariants(): string | null {
    let processing = 0;
    const onWorker = new Map<WorkerState, number>();
    const holds = new Map<TaskState, number>();
    for (const c of this.clients.values()) for (const ts of c.held ?? []) holds.set(ts, (holds.get(ts) ?? 0) + 1);
    for (const ts of this.tasks.values()) {
      if (ts.state === 'processing') {
        processing++;
        if (this.byRun.get(ts.run) !== ts) return `task ${ts.key} is processing but not in flight under run ${ts.run}`;
        const w = ts.processingOn;
        if (!w || this.workers.get(w.id) !== w) return `task ${ts.key} is processing on a worker that is gone`;
        onWorker.set(w, (onWorker.get(w) ?? 0) + 1);
      } else if (ts.processingOn !== null) return `task ${ts.key} is ${ts.state} but still on worker ${ts.processingOn.name}`;
      let needing = 0;
      let live = 0;
      for (const d of ts.dependents) {
        if (needsDeps(d.state)) needing++;
        if (d.state !== 'forgotten') live++;
      }
      const held = holds.get(ts) ?? 0;
      if (ts.waiters !== needing + held) return `task ${ts.key} counts ${ts.waiters} waiters; ${needing} dependents need it and ${held} submissions hold it`;
      if (ts.liveDependents !== live) return `task ${ts.key} counts ${ts.liveDependents} live dependents; ${live} are not forgotten`;
      if (ts.state === 'memory' && ts.whoHas.length === 0) return `task ${ts.key} is in memory with no holder`;
      for (const w of ts.whoHas) if (this.workers.get(w.id) !== w) return `task ${ts.key} is held by worker ${w.name}, which is gone`;
      if (ts.state === 'waiting') {
        const missing = missingInputs(ts);
        if (ts.waitingOn !== missing) return `task ${ts.key} waits on ${ts.waitingOn} dependencies; ${missing} are not in memory`;
      }
      for (const d of ts.deps) if (d.state === 'forgotten' && needsDeps(ts.state)) return `task ${ts.key} (${ts.state}) depends on ${d.key}, which is forgotten`;
    }
    if (this.byRun.size !== processing) return `${this.byRun.size} runs in flight for ${processing} processing tasks`;
    for (const w of this.workers.values()) {
      if (w.processing !== (onWorker.get(w) ?? 0)) return `worker ${w.name} counts ${w.processing} processing tasks; ${onWorker.get(w) ?? 0} are on it`;
    }
    return null;
  }

  /** Counts of tasks per state, for logs and tests. */
  stateCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const ts of this.tasks.values()) out[ts.state] = (out[ts.state] ?? 0) + 1;
    return out;
  }
}

function before(a: TaskState, b: TaskState): boolean {
  return a.priority !== b.priority ? a.priority > b.priority : a.order < b.order;
}

/** The reason to reject a graph naming keys that do not exist ("task -> dependency" or "(wanted) key"), or null. */
function missingProblem(missing: string[]): { message: string; keys: string[] } | null {
  if (missing.length === 0) return null;
  return { message: `missing dependencies (task -> dependency): ${list(missing)}`, keys: missing.map((m) => m.split(' -> ')[0] ?? m) };
}

/** out[i + 1] = counts[0] + ... + counts[i]. */
function prefixSums(counts: ArrayLike<number>, out: Int32Array): void {
  for (let i = 0; i < counts.length; i++) out[i + 1] = (out[i] as number) + (counts[i] as number);
}

/** Whether task i of graph g defines the same task as `existing` (the same key seen before, or earlier in g). */
function sameTask(g: GraphMsg, depStart: Int32Array, i: number, fn: FnEntry, existing: TaskState): boolean {
  if (fn !== existing.fn) return false;
  const argsOf = (t: number): Uint8Array => g.args.subarray(t === 0 ? 0 : (g.argEnds[t - 1] as number), g.argEnds[t] as number);
  const depsOf = (t: number): string[] => g.deps.slice(depStart[t], depStart[t + 1]);
  const j = existing.order <= FRESH ? FRESH - existing.order : -1;
  if (j >= 0) return bytesEqual(argsOf(i), argsOf(j)) && sameKeys(depsOf(i), depsOf(j));
  return bytesEqual(taskArgs(existing), argsOf(i)) && sameKeys(existing.deps.map((d) => d.key), depsOf(i));
}

function bytesEqual(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  return Buffer.compare(a, b) === 0;
}

/** How many of a task's dependencies are not in memory. */
function missingInputs(ts: TaskState): number {
  let n = 0;
  for (const d of ts.deps) if (d.state !== 'memory') n++;
  return n;
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((k, i) => k === b[i]);
}

/**
 * One cycle among the new tasks, as task indices (first repeated at the end),
 * or null. Kahn's algorithm over index arrays; `depIndex(k)` maps entry k of
 * the dependency column to a new task's index, or -1.
 */
function findCycle(n: number, isFresh: Uint8Array, depStart: Int32Array, depIndex: (k: number) => number): number[] | null {
  const indeg = new Int32Array(n);
  const outCount = new Int32Array(n + 1);
  let edges = 0;
  for (let i = 0; i < n; i++) {
    if (!isFresh[i]) continue;
    for (let k = depStart[i] as number; k < (depStart[i + 1] as number); k++) {
      const j = depIndex(k);
      if (j < 0) continue;
      indeg[i] = (indeg[i] as number) + 1;
      outCount[j + 1] = (outCount[j + 1] as number) + 1;
      edges++;
    }
  }
  if (edges === 0) return null;
  for (let i = 0; i < n; i++) outCount[i + 1] = (outCount[i + 1] as number) + (outCount[i] as number);
  const fill = outCount.slice(0, n);
  const out = new Int32Array(edges);
  for (let i = 0; i < n; i++) {
    if (!isFresh[i]) continue;
    for (let k = depStart[i] as number; k < (depStart[i + 1] as number); k++) {
      const j = depIndex(k);
      if (j >= 0) {
        const at = fill[j] as number;
        out[at] = i;
        fill[j] = at + 1;
      }
    }
  }
  const ready: number[] = [];
  let fresh = 0;
  for (let i = 0; i < n; i++) {
    if (!isFresh[i]) continue;
    fresh++;
    if (indeg[i] === 0) ready.push(i);
  }
  let done = 0;
  while (ready.length > 0) {
    const j = ready.pop() as number;
    done++;
    for (let e = outCount[j] as number; e < (outCount[j + 1] as number); e++) {
      const i = out[e] as number;
      const left = (indeg[i] as number) - 1;
      indeg[i] = left;
      if (left === 0) ready.push(i);
    }
  }
  if (done === fresh) return null;
  // Walk from a task left over along dependencies also left over until one repeats.
  let at = -1;
  for (let i = 0; i < n && at < 0; i++) if (isFresh[i] && (indeg[i] as number) > 0) at = i;
  const path: number[] = [];
  const seenAt = new Map<number, number>();
  while (!seenAt.has(at)) {
    seenAt.set(at, path.length);
    path.push(at);
    let next = -1;
    for (let k = depStart[at] as number; k < (depStart[at + 1] as number) && next < 0; k++) {
      const j = depIndex(k);
      if (j >= 0 && (indeg[j] as number) > 0) next = j;
    }
    if (next < 0) break;
    at = next;
  }
  const cycle = path.slice(seenAt.get(at) ?? 0);
  cycle.push(at);
  return cycle.reverse();
}

function dependencyError(failed: TaskState): SerializedError {
  const e = failed.error ?? { name: 'Error', message: 'unknown error' };
  return { name: e.name, message: e.message, stack: e.stack, failedKey: e.failedKey ?? failed.key };
}

function describeNeeds(ts: TaskState): string {
  const parts: string[] = [];
  if (ts.resources) parts.push(`resources ${Object.entries(ts.resources).map(([k, v]) => `${k}=${v}`).join(',')}`);
  if (ts.workers) parts.push(`one of the workers ${ts.workers.join(', ')}`);
  return parts.join(' and ') || 'a worker';
}

function list(items: string[]): string {
  return items.length <= 10 ? items.join(', ') : `${items.slice(0, 10).join(', ')} and ${items.length - 10} more`;
}
