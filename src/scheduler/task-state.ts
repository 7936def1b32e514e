/**
 * The scheduler's records. Per-task state is one small object with no
 * per-task collections beyond its dependency lists: counters stand in for sets
 * wherever only a count is needed.
 */
import type { SerializedError } from '../errors.ts';
import type { FnDef } from '../protocol/messages.ts';

export type TaskStatus =
  | 'released' // known, not computed (or its data was dropped)
  | 'waiting' // needs dependencies that are not in memory yet
  | 'queued' // ready root task held on the scheduler until a worker has a free slot
  | 'no-worker' // ready, but no connected worker can run it (resources, restrictions)
  | 'processing' // sent to a worker
  | 'memory' // result held by one or more workers
  | 'erred'
  | 'forgotten';

/** States in which a task still needs its dependencies' data. */
export function needsDeps(s: TaskStatus): boolean {
  return s === 'waiting' || s === 'queued' || s === 'no-worker' || s === 'processing';
}

/** Tasks per state, by name (for the dashboard and metrics). */
export type StateCounts = Record<TaskStatus, number>;

export const STATES: readonly TaskStatus[] = ['released', 'waiting', 'queued', 'no-worker', 'processing', 'memory', 'erred', 'forgotten'];

/**
 * A state's place in STATES. Counts per state are kept in arrays by this
 * index, not in objects by name: setState runs several times per task, and
 * a store to an object by a name that varies goes through V8's generic
 * keyed-access path, where comparing the interned names is a few compares.
 */
export function stateIndex(s: TaskStatus): number {
  switch (s) {
    case 'released':
      return 0;
    case 'waiting':
      return 1;
    case 'queued':
      return 2;
    case 'no-worker':
      return 3;
    case 'processing':
      return 4;
    case 'memory':
      return 5;
    case 'erred':
      return 6;
    case 'forgotten':
      return 7;
  }
}

/** Counts per state, indexed by stateIndex: kept by setState, so reading them costs nothing (a dashboard asks a few times a second). */
export function stateCounts(): number[] {
  return [0, 0, 0, 0, 0, 0, 0, 0];
}

/** Counts indexed by stateIndex, by name. */
export function byState(counts: readonly number[]): StateCounts {
  const out = {} as StateCounts;
  STATES.forEach((s, i) => (out[s] = counts[i] ?? 0));
  return out;
}

export class TaskGroup {
  /** Its tasks per state, by stateIndex (forgotten: gone, counted as they go). */
  readonly states = stateCounts();
  /** Exponential moving average of run time in seconds; -1 until measured. */
  duration = -1;
  /** Tasks of this group finished and erred so far (for /metrics). */
  done = 0;
  erred = 0;
  constructor(readonly name: string) {}

  record(seconds: number): void {
    this.duration = this.duration < 0 ? seconds : this.duration + (seconds - this.duration) * 0.2;
  }
}

/** The shared empty list; never pushed to (see addDependent, addHolder). */
const NONE = Object.freeze([]) as unknown as never[];

/**
 * A task function, interned: every task calling it shares this record. One
 * that no task refers to any more is forgotten after a while (see
 * functions.ts), by the scheduler and its workers.
 */
export class FnEntry {
  /** Tasks the scheduler holds that call it. */
  refs = 0;
  /** When `refs` last fell to 0 (-1: it has tasks). */
  idleSince = -1;

  constructor(
    readonly id: number,
    /** Its key in SchedulerCore.fnByRef. */
    readonly key: string,
    readonly def: FnDef,
    readonly group: TaskGroup,
  ) {}
}

/**
 * What few tasks have (a priority, restrictions, retries, a second wanter,
 * an error, a worker that died running it): one object, made on first need,
 * so that the record of every other task is smaller by its fields.
 */
export interface TaskRare {
  priority: number;
  resources: Record<string, number> | null;
  workers: string[] | null;
  retriesLeft: number;
  /** Clients wanting the key beyond the first (TaskState.wanter). */
  moreWanters: ClientRecord[] | null;
  error: SerializedError | null;
  /** Workers that died while running this task. */
  suspicious: number;
  /** When it went to `no-worker`. */
  noWorkerSince: number;
  /** Its dependents beyond the first (TaskState.dependent). */
  moreDependents: TaskState[] | null;
}

/**
 * One task's record. A plain object made by `newTask`, not a class instance:
 * V8 tracks object literals by their allocation site and, seeing that almost
 * all of them outlive a young-generation collection (a graph's tasks live
 * until released), allocates later ones straight in the old generation. A
 * class's records would be copied twice on the way there, which made up
 * much of a large graph's collection time. Each field costs 8 bytes per
 * task (16 MB at two million): what few tasks need is in `rare`.
 */
export interface TaskState {
  readonly key: string;
  /** The function (null for scattered data)... */
  readonly fn: FnEntry | null;
  /** ...and its msgpack arguments: bytes argStart..argEnd of the graph message's buffer (shared, not a view per task). */
  readonly argBuf: Uint8Array | null;
  readonly argStart: number;
  readonly argEnd: number;
  state: TaskStatus;
  /** Shared empty array until linked. */
  deps: TaskState[];
  /**
   * Its first dependent (others: rare.moreDependents): most tasks have none
   * or one, and a one-element array would cost 56 bytes (see addDependent).
   */
  dependent: TaskState | null;
  /** Dependencies not in memory (meaningful while waiting). */
  waitingOn: number;
  /** Dependents that still need this task's data (in a `needsDeps` state), and one while a submission in parts holds it (ClientRecord.held). */
  waiters: number;
  /** The client holding a future for this key (others: rare.moreWanters). */
  wanter: ClientRecord | null;
  /**
   * The first wanter's ticket for this key (null: none; see GraphMsg.tickets).
   * Here, and in `nbytes`, null rather than -1 or 0 has a second purpose: V8
   * keeps a field that only ever held numbers as a boxed double in every
   * task once any value is not a small integer (tickets are large, sizes come
   * from Float64Arrays): 2 x 16 bytes more per task, measured in a heap
   * snapshot of the scheduler. A field that also holds null stays tagged.
   */
  ticket: number | null;
  /** The workers holding the result: shared and never changed in place (see addHolder). */
  whoHas: readonly WorkerRecord[];
  /** The size of its result in bytes, once it has one (null before; see `ticket`). */
  nbytes: number | null;
  /** Its run on a worker while processing, else null (attach and detach in core.ts). */
  flight: InFlight | null;
  /** Static graph order (lower runs first); -1 until ordered. */
  order: number;
  rare: TaskRare | null;
}

/** A task's run on a worker: made when it is sent, dropped when it leaves (a few thousand exist at a time, not one per task). */
export interface InFlight {
  readonly worker: WorkerRecord;
  /** The run's number: results of older runs are stale. */
  readonly run: number;
  /** Seconds it was expected to take (added to its worker's occupancy). */
  readonly expected: number;
  /** The worker said it handed the task to an executor thread. */
  executing: boolean;
  /** Asked of its worker by a steal (stealing.ts), not answered yet. */
  stealing: boolean;
  /** Gave its thread slot back while it waits (TaskContext.secede): not counted in its worker's busy threads. */
  seceded: boolean;
}

/** A steal asked of a victim and not yet answered (stealing.ts), kept by the task's run number. */
export interface PendingSteal {
  readonly ts: TaskState;
  readonly victim: WorkerRecord;
  readonly thief: WorkerRecord;
  /** Seconds moved from the victim's occupancy to the thief's (given back once answered). */
  readonly expected: number;
}

/** The options of a task that has any (TaskRare's first fields), or null. */
export type TaskOptionsIn = Pick<TaskRare, 'priority' | 'resources' | 'workers' | 'retriesLeft'> | null;

/** A new task record (the one place records are made: see TaskState). */
export function newTask(key: string, fn: FnEntry | null, argBuf: Uint8Array | null, argStart: number, argEnd: number, options: TaskOptionsIn): TaskState {
  return {
    key, fn, argBuf, argStart, argEnd,
    state: 'released', deps: NONE, dependent: null, waitingOn: 0, waiters: 0,
    wanter: null, ticket: null, whoHas: NONE, nbytes: null, flight: null, order: -1,
    rare: options === null ? null : { ...options, moreWanters: null, error: null, suspicious: 0, noWorkerSince: 0, moreDependents: null },
  };
}

/** The task's rare fields, made on first need. */
export function rareOf(ts: TaskState): TaskRare {
  return (ts.rare ??= { priority: 0, resources: null, workers: null, retriesLeft: 0, moreWanters: null, error: null, suspicious: 0, noWorkerSince: 0, moreDependents: null });
}

/** The size of its result in bytes (0 while it has none). */
export function bytesOf(ts: TaskState): number {
  return ts.nbytes ?? 0;
}

export function priorityOf(ts: TaskState): number {
  return ts.rare === null ? 0 : ts.rare.priority;
}

/** The group of a computed task (scattered data has none: never call this for it). */
export function groupOf(ts: TaskState): TaskGroup {
  return (ts.fn as FnEntry).group;
}

export function addDependent(ts: TaskState, d: TaskState): void {
  if (ts.dependent === null) ts.dependent = d;
  else (rareOf(ts).moreDependents ??= []).push(d);
}

/** Whether a dependent is not forgotten yet (a task is forgotten only once none is). */
export function hasLiveDependents(ts: TaskState): boolean {
  if (ts.dependent === null) return false;
  if (ts.dependent.state !== 'forgotten') return true;
  const more = ts.rare?.moreDependents;
  return more ? more.some((d) => d.state !== 'forgotten') : false;
}

export function dependentCount(ts: TaskState): number {
  return ts.dependent === null ? 0 : 1 + (ts.rare?.moreDependents?.length ?? 0);
}

/** Its dependents as a new array: for the rare paths, not the hot ones (which read `dependent` and `moreDependents`). */
export function dependentsOf(ts: TaskState): TaskState[] {
  if (ts.dependent === null) return [];
  const more = ts.rare?.moreDependents;
  return more ? [ts.dependent, ...more] : [ts.dependent];
}

/** The arguments' bytes (a new view: for the rare comparisons, not the hot path). */
export function taskArgs(ts: TaskState): Uint8Array | null {
  return ts.argBuf ? ts.argBuf.subarray(ts.argStart, ts.argEnd) : null;
}

/**
 * Adds a holder. Lists of holders are never changed in place: a task held by
 * one worker (almost all) shares that worker's one-element list, so a
 * result in memory costs no allocation here.
 */
export function addHolder(ts: TaskState, w: WorkerRecord): void {
  if (ts.whoHas === NONE) ts.whoHas = w.only;
  else if (!ts.whoHas.includes(w)) ts.whoHas = [...ts.whoHas, w];
}

/** Removes a holder; false if it was not one. */
export function removeHolder(ts: TaskState, w: WorkerRecord): boolean {
  if (!ts.whoHas.includes(w)) return false;
  ts.whoHas = ts.whoHas.length === 1 ? NONE : ts.whoHas.filter((x) => x !== w);
  return true;
}

export function clearHolders(ts: TaskState): void {
  ts.whoHas = NONE;
}

/** Still needed by a client or by a dependent that has not run yet. */
export function isNeeded(ts: TaskState): boolean {
  return ts.wanter !== null || ts.waiters > 0;
}

/** Adds a client wanting this key; false if it already did. */
export function addWanter(ts: TaskState, c: ClientRecord): boolean {
  if (ts.wanter === null) ts.wanter = c;
  else if (ts.wanter === c || ts.rare?.moreWanters?.includes(c)) return false;
  else (rareOf(ts).moreWanters ??= []).push(c);
  return true;
}

/** Removes a client wanting this key; false if it did not. */
export function removeWanter(ts: TaskState, c: ClientRecord): boolean {
  const more = ts.rare?.moreWanters;
  if (ts.wanter === c) {
    ts.wanter = more?.shift() ?? null;
    ts.ticket = null;
    if (more?.length === 0) rareOf(ts).moreWanters = null;
    return true;
  }
  if (!more) return false;
  const i = more.indexOf(c);
  if (i < 0) return false;
  more.splice(i, 1);
  if (more.length === 0) rareOf(ts).moreWanters = null;
  return true;
}

export function forEachWanter(ts: TaskState, fn: (c: ClientRecord) => void): void {
  if (ts.wanter) fn(ts.wanter);
  const more = ts.rare?.moreWanters;
  if (more) for (const c of more) fn(c);
}

export function hasRestrictions(ts: TaskState): boolean {
  return ts.rare !== null && (ts.rare.resources !== null || ts.rare.workers !== null);
}

export class WorkerRecord {
  /**
   * Counts, not sets: tasks sent here and not finished, results held here. A
   * worker leaving (rare) finds its tasks by scanning; the hot path only counts.
   */
  processing = 0;
  stored = 0;
  /** Functions already defined on this worker's connection. */
  knownFns = new Set<number>();
  /** Expected seconds of work in `processing`. */
  occupancy = 0;
  storedBytes = 0;
  memory = 0;
  /** From its heartbeats: bytes sent to other workers, and fetched from them. */
  bytesSentToPeers = 0;
  bytesFetched = 0;
  /** Its CPU use over its last heartbeat interval (1 = one core). */
  cpu = 0;
  /** From its heartbeats: past its memory limit's pause threshold (it starts no task), and its results on disk. */
  paused = false;
  spilledBytes = 0;
  /** From its heartbeats: threads running a cancelled task that has not stopped (every thread stuck: it gets no work). */
  stuck = 0;
  /** Its memory limit, as it said when it joined (0: none). */
  memoryLimit = 0;
  /** From its heartbeats: why it cannot spill to disk, while it cannot. */
  spillBlocked: string | null = null;
  /** Steals asked and not answered: tasks on their way here, and away from here (stealing.ts). */
  stealingIn = 0;
  stealingOut = 0;
  /** Of `processing`, the tasks that gave their thread slot back (seceded): the worker may take as many more. */
  seceded = 0;

  /** Tasks that hold or wait for its threads: those sent here, less those that seceded. */
  get busy(): number {
    return this.processing - this.seceded;
  }
  /** Tasks moved here, and away from here, by work stealing so far. */
  stolenIn = 0;
  stolenOut = 0;
  lastSeen: number;
  /** The scheduler's summed stall time when it last heard this worker (its silence excludes stalls since). */
  stalledAtSeen = 0;
  closing = false;

  constructor(
    readonly id: string,
    readonly name: string,
    readonly address: string,
    readonly nthreads: number,
    readonly resources: Record<string, number>,
    readonly pid: number,
    now: number,
  ) {
    this.lastSeen = now;
    this.only = [this];
  }

  /** [this worker]: the list of holders of every task held here only (shared, never changed). */
  readonly only: readonly WorkerRecord[];
}

export class ClientRecord {
  /** How many keys this client wants (the tasks record which clients want them). */
  wants = 0;
  /** Task-event topics this client subscribed to (null: none). */
  topics: Set<string> | null = null;
  /** Tasks of a submission in parts, held until its last part, a list per part (null: none); not one list of millions, which grows by copying. */
  held: (readonly TaskState[])[] | null = null;
  constructor(readonly id: string) {}
}

/** One replicate or retire-workers request in progress. */
export interface Move {
  client: string;
  id: number;
  /** Copies not yet reported: `worker id \0 key`. */
  outstanding: Set<string>;
  failed: string[];
  /** Workers to retire once their results are elsewhere (none for a replicate). */
  retire: WorkerRecord[];
  /** Retiring: the copies were asked for (after the workers' running tasks ended). */
  started: boolean;
}

export interface Restart {
  client: string;
  id: number;
  /** Workers (by name) yet to say they restarted, or to connect again as new processes. */
  waiting: Set<string>;
  /** Answered by then whatever happened (a worker that does not come back). */
  deadline: number;
}
