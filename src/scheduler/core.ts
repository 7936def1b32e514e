/**
 * The scheduler's state and the one function through which every task's
 * state changes (setState), with the transitions it allows. The rest of the
 * scheduler is functions over this state, a module per concern: intake
 * (graphs in), transitions (a task's life), placement (where it runs),
 * speculation (chains sent ahead), topics (task events), workers (their
 * messages); state-machine.ts dispatches the events to them.
 */
import { ShardedMap } from '../util/sharded-map.ts';
import type { z } from 'zod';
import { lazySchemas } from '../util/zod.ts';
import { type FnEntry, type Move, type PendingSteal, type Restart, type WorkerRecord, addWanter, needsDeps, TaskGroup, type TaskState, type TaskStatus, priorityOf, type InFlight, ClientRecord, stateCounts, stateIndex } from './task-state.ts';
import { Heap } from '../util/heap.ts';
import { Outbox } from './outbox.ts';
import type { Primitives } from './primitives.ts';

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
  /** Work stealing (stealing.ts): queued tasks move from saturated workers to ones with a free thread. */
  stealing: z.boolean().default(true),
  /** The round trip a steal costs when the thief must fetch inputs, in seconds, on top of the bytes at `bandwidth`. */
  stealLatencySeconds: z.number().nonnegative().default(0.01),
  /** Tasks expected to take less than this (seconds) are never stolen: the round trip would cost more than it saves. */
  stealMinDurationSeconds: z.number().nonnegative().default(0.005),
  /** A function no task refers to is forgotten (here and on the workers) after this long... */
  forgetFunctionsAfterMs: z.number().int().nonnegative().default(60_000),
  /** ...or sooner, oldest first, while the sources of such functions add up to more than this. */
  idleFunctionBytes: z.number().int().nonnegative().default(64 * 1024 * 1024),
}),
);
export type SchedulerConfig = z.infer<ReturnType<typeof schedulerConfigSchema>>;

/** A result a running task put on its worker before a task computing it was submitted (see early.ts). */
export interface EarlyResult {
  readonly parent: TaskState;
  readonly worker: WorkerRecord;
  readonly nbytes: number;
}

export interface LogRecord {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  data?: Record<string, unknown>;
}

/**
 * The transitions a task may make, from each state: everything else is a
 * bug, reported by checkInvariants (setState records it). `needsDeps` states
 * (waiting, queued, no-worker, processing) count in each dependency's
 * `waiters`; setState keeps those counts.
 */
export const TRANSITIONS: Readonly<Record<TaskStatus, readonly TaskStatus[]>> = {
  // Needed (again): wait for inputs; scattered data arriving, or lost for good; nothing refers to it.
  released: ['waiting', 'memory', 'erred', 'forgotten'],
  // Inputs in memory: queued (root-ish) or placed; its value put early by the task it waits on (early.ts) or given back by a client (restore.ts); erred or released on the way.
  waiting: ['queued', 'processing', 'no-worker', 'memory', 'erred', 'released'],
  // Placed, back to wait (an input lost), erred, no longer wanted; or its value given back by a client (restore.ts).
  queued: ['processing', 'waiting', 'memory', 'erred', 'released'],
  'no-worker': ['processing', 'waiting', 'memory', 'erred', 'released'],
  // Its result, or back to wait (its worker died, an input was lost, a retry), placed again, erred, no longer wanted.
  processing: ['memory', 'waiting', 'queued', 'processing', 'no-worker', 'erred', 'released'],
  memory: ['released'],
  erred: ['forgotten'],
  forgotten: [],
};

export class SchedulerCore {
  /** Every task by key (sharded: see ShardedMap). */
  readonly tasks = new ShardedMap<TaskState>();
  /** Tasks per state, by stateIndex (forgotten ones counted as they go), kept by born and setState. */
  readonly counts = stateCounts();
  readonly workers = new Map<string, WorkerRecord>();
  readonly clients = new Map<string, ClientRecord>();
  readonly byAddress = new Map<string, WorkerRecord>();
  readonly groups = new Map<string, TaskGroup>();
  readonly fnByRef = new Map<string, FnEntry>();
  /** Functions no task refers to, in the order they became so (see functions.ts). */
  readonly idleFns = new Set<FnEntry>();
  idleFnBytes = 0;
  /** The last function id given (ids are never reused: a worker may still know a forgotten one's). */
  fnCounter = 0;
  /** Ready root-ish tasks held here until a worker has a free slot (entries are removed lazily, when popped: see nextQueued). */
  readonly queue = new Heap<TaskState>(before);
  readonly noWorker = new Set<TaskState>();
  /**
   * Tasks sent to a worker, by run number. Results are matched here, in a
   * map of the tasks in flight, rather than in the table of every key.
   */
  readonly byRun = new Map<number, TaskState>();
  /** Clients subscribed to each task-event topic. */
  readonly subscribers = new Map<string, ClientRecord[]>();
  outbox = new Outbox();
  close: { id: string; reason: string }[] = [];
  logs: LogRecord[] = [];
  /** Tasks whose need count dropped to zero: release (and maybe forget) them. */
  releaseQ: TaskState[] = [];
  orderCounter = 0;
  runCounter = 0;
  /** Results computed by task runs (workers.ts, taskFinished). */
  computed = 0;
  /** Average run time over all tasks: the guess for a kind never measured. */
  globalDuration = -1;
  now = 0;
  /** When the last event carrying the time came (-1: none yet). */
  lastEventAt = -1;
  /** Time the scheduler was stalled, summed (see stallThresholdMs). */
  stalledMs = 0;
  /**
   * The wanter of keys a client fired and forgot: it holds their tasks until
   * they end (in memory or erred), then lets go. Not a connection: nothing
   * is sent to it.
   */
  readonly forgetful = new ClientRecord('(fire and forget)');
  /** Published datasets: each a wanter of its own holding its keys until unpublished. */
  readonly datasets = new Map<string, { holder: ClientRecord; keys: string[] }>();
  /** Replicate and retire-workers requests in progress (see replicas.ts). */
  moves: Move[] = [];
  /** A restart waiting for its workers (see restart.ts). */
  restarting: Restart | null = null;
  /** Turns through the holders of a key (who-has). */
  spread = 0;
  /**
   * Results put by running tasks ahead of the tasks that compute them
   * (early.ts), by key, and the keys each such running task put.
   */
  readonly early = new Map<string, EarlyResult>();
  readonly earlyOf = new Map<TaskState, string[]>();
  /** Steals asked and not answered, by the task's run (stealing.ts); when the balance last ran; and counts for /metrics. */
  readonly steals = new Map<number, PendingSteal>();
  lastBalance = -Infinity;
  /** Semaphores, events, variables and queues, by `kind\u0000name` (coordination.ts). */
  readonly primitives: Primitives = new Map();
  stealRequests = 0;
  tasksStolen = 0;
  /** Transitions TRANSITIONS does not allow, as seen (a bug: checkInvariants reports the first). */
  illegal: string[] = [];

  constructor(readonly config: SchedulerConfig) {}
}

/** A task made and kept (in `released`, its first state): counted. */
export function born(s: SchedulerCore, ts: TaskState): void {
  (s.counts[0] as number)++; // released: stateIndex('released')
  const fn = ts.fn;
  if (fn !== null) {
    (fn.group.states[0] as number)++;
    if (fn.refs++ === 0 && fn.idleSince >= 0) {
      s.idleFns.delete(fn);
      s.idleFnBytes -= fn.def[1].length;
      fn.idleSince = -1;
    }
  }
}

/** A task is gone for good: its function may become idle (and, after a while, forgotten). */
export function gone(s: SchedulerCore, ts: TaskState): void {
  const fn = ts.fn;
  if (fn !== null && --fn.refs === 0) idle(s, fn);
}

/** A function no task refers to any more, from now. */
export function idle(s: SchedulerCore, fn: FnEntry): void {
  if (fn.idleSince >= 0) return;
  fn.refs = 0;
  fn.idleSince = s.now;
  s.idleFns.add(fn);
  s.idleFnBytes += fn.def[1].length;
}

/** Sets a state, keeping every dependency's `waiters` count and the counts per state exact. */
export function setState(s: SchedulerCore, ts: TaskState, next: TaskStatus): void {
  const from = ts.state;
  if (!TRANSITIONS[from].includes(next) && s.illegal.length < 10) s.illegal.push(`task ${ts.key}: ${from} -> ${next}`);
  const a = stateIndex(from);
  const b = stateIndex(next);
  (s.counts[a] as number)--;
  (s.counts[b] as number)++;
  if (ts.fn !== null) {
    const g = ts.fn.group.states;
    (g[a] as number)--;
    (g[b] as number)++;
  }
  const was = needsDeps(from);
  const now = needsDeps(next);
  ts.state = next;
  if (was === now) return;
  for (const d of ts.deps) {
    if (now) d.waiters++;
    else if (--d.waiters === 0) s.releaseQ.push(d);
  }
}

/** The task group of a name (made on first use): durations are measured per group. */
export function group(s: SchedulerCore, name: string): TaskGroup {
  let g = s.groups.get(name);
  if (!g) {
    g = new TaskGroup(name);
    s.groups.set(name, g);
  }
  return g;
}

/** Tells a client its key is in memory: by ticket if it is the wanter that gave one, else by key. */
export function tellInMemory(s: SchedulerCore, c: ClientRecord, ts: TaskState, address: string): void {
  s.outbox.inMemory(c.id, ts.key, ts.wanter === c ? (ts.ticket ?? -1) : -1, address);
}

/** `ticket`: the client's ticket for the key (-1: none), kept while it is the first wanter. */
export function addWant(s: SchedulerCore, c: ClientRecord, ts: TaskState, ticket = -1): void {
  if (addWanter(ts, c)) c.wants++;
  if (ticket >= 0 && ts.wanter === c) ts.ticket = ticket;
}

/** Advances the clock; a gap beyond stallThresholdMs is time the scheduler could not hear anyone. */
export function clock(s: SchedulerCore, now: number): void {
  if (s.lastEventAt >= 0) s.stalledMs += Math.max(0, now - s.lastEventAt - s.config.stallThresholdMs);
  s.lastEventAt = now;
  s.now = now;
}

/** Queue order: higher priority first, then lower graph order. */
export function before(a: TaskState, b: TaskState): boolean {
  const pa = priorityOf(a);
  const pb = priorityOf(b);
  return pa !== pb ? pa > pb : a.order < b.order;
}

/** A task goes to run on worker `w`: its flight, on the worker's books. */
export function attach(s: SchedulerCore, ts: TaskState, w: WorkerRecord, expected: number): InFlight {
  const flight: InFlight = { worker: w, run: ++s.runCounter, expected, executing: false, stealing: false, seceded: false };
  ts.flight = flight;
  s.byRun.set(flight.run, ts);
  w.occupancy += expected;
  w.processing++;
  return flight;
}

/**
 * A task leaves its worker (a result, an error, the worker gone, cancelled):
 * off the worker's books. Returns the worker, or null if it was on none.
 * Results it put early that no task took are dropped, unless it `finished`:
 * they stay claimable while its result is held (early.ts).
 */
export function detach(s: SchedulerCore, ts: TaskState, finished = false): WorkerRecord | null {
  const f = ts.flight;
  if (f === null) return null;
  ts.flight = null;
  if (!finished && s.earlyOf.size > 0) dropEarly(s, ts);
  s.byRun.delete(f.run);
  f.worker.processing--;
  if (f.seceded) f.worker.seceded--;
  else f.worker.occupancy = Math.max(0, f.worker.occupancy - f.expected);
  return f.worker;
}

/** Drops the results task `ts` put early that no task took, on the workers that hold them (see early.ts). */
export function dropEarly(s: SchedulerCore, ts: TaskState): void {
  const keys = s.earlyOf.get(ts);
  if (!keys) return;
  s.earlyOf.delete(ts);
  for (const k of keys) {
    const e = s.early.get(k);
    if (e?.parent !== ts) continue;
    s.early.delete(k);
    if (s.workers.get(e.worker.id) === e.worker) s.outbox.key(e.worker.id, 'free', k);
  }
}

/** How many of a task's dependencies are not in memory. */
export function missingInputs(ts: TaskState): number {
  let n = 0;
  for (const d of ts.deps) if (d.state !== 'memory') n++;
  return n;
}
