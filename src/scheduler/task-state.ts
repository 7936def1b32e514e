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

export class TaskGroup {
  /** Exponential moving average of run time in seconds; -1 until measured. */
  duration = -1;
  constructor(readonly name: string) {}

  record(seconds: number): void {
    this.duration = this.duration < 0 ? seconds : this.duration + (seconds - this.duration) * 0.2;
  }
}

/** The shared empty list; never pushed to (see addDependent, addHolder). */
const NONE = Object.freeze([]) as unknown as never[];

/** A task function, interned: every task calling it shares this record. */
export class FnEntry {
  constructor(
    readonly id: number,
    readonly def: FnDef,
    readonly group: TaskGroup,
  ) {}
}

/**
 * One task's record. A plain object made by `newTask`, not a class instance:
 * V8 tracks object literals by their allocation site and, seeing that almost
 * all of them outlive a young-generation collection (a graph's tasks live
 * until released), allocates later ones straight in the old generation. A
 * class's records would be copied twice on the way there, which made up
 * much of a large graph's collection time.
 */
export interface TaskState {
  readonly key: string;
  /** The function (null for scattered data)... */
  readonly fn: FnEntry | null;
  /** ...and its msgpack arguments: bytes argStart..argEnd of the graph message's buffer (shared, not a view per task). */
  readonly argBuf: Uint8Array | null;
  readonly argStart: number;
  readonly argEnd: number;
  readonly group: TaskGroup;
  readonly priority: number;
  readonly retries: number;
  readonly resources: Record<string, number> | null;
  readonly workers: string[] | null;
  state: TaskStatus;
  /** Shared empty array until linked. */
  deps: TaskState[];
  /** Shared empty array until the first dependent (most tasks never get one): push via addDependent. */
  dependents: TaskState[];
  /** Dependencies not in memory (meaningful while waiting). */
  waitingOn: number;
  /** Dependents that still need this task's data (in a `needsDeps` state), and one while a submission in parts holds it (ClientRecord.held). */
  waiters: number;
  /** Dependents not yet forgotten. */
  liveDependents: number;
  /** The client holding a future for this key, and any others beyond the first. */
  wanter: ClientRecord | null;
  moreWanters: ClientRecord[] | null;
  /** The first wanter's ticket for this key (-1: none; see GraphMsg.tickets). */
  ticket: number;
  /** The workers holding the result: shared and never changed in place (see addHolder). */
  whoHas: readonly WorkerRecord[];
  nbytes: number;
  processingOn: WorkerRecord | null;
  /** Attempt number of the current run; results of older runs are stale. */
  run: number;
  /** The worker said it handed this task to an executor thread. */
  executing: boolean;
  /** Workers that died while running this task. */
  suspicious: number;
  retriesLeft: number;
  error: SerializedError | null;
  noWorkerSince: number;
  /** Static graph order (lower runs first); -1 until ordered. */
  order: number;
  /** Seconds this run was expected to take (added to its worker's occupancy). */
  expected: number;
  /** In the scheduler's root-task queue (entries are removed lazily). */
  inQueue: boolean;
}

/** A new task record (the one place records are made: see TaskState). */
export function newTask(
  key: string,
  fn: FnEntry | null,
  argBuf: Uint8Array | null,
  argStart: number,
  argEnd: number,
  group: TaskGroup,
  priority: number,
  retries: number,
  resources: Record<string, number> | null,
  workers: string[] | null,
): TaskState {
  return {
    key, fn, argBuf, argStart, argEnd, group, priority, retries, resources, workers,
    state: 'released', deps: NONE, dependents: NONE, waitingOn: 0, waiters: 0, liveDependents: 0,
    wanter: null, moreWanters: null, ticket: -1, whoHas: NONE, nbytes: 0, processingOn: null, run: 0,
    executing: false, suspicious: 0, retriesLeft: retries, error: null, noWorkerSince: 0,
    order: -1, expected: 0, inQueue: false,
  };
}

/** The arguments' bytes (a new view: for the rare comparisons, not the hot path). */
export function taskArgs(ts: TaskState): Uint8Array | null {
  return ts.argBuf ? ts.argBuf.subarray(ts.argStart, ts.argEnd) : null;
}

export function addDependent(ts: TaskState, d: TaskState): void {
  if (ts.dependents === NONE) ts.dependents = [d];
  else ts.dependents.push(d);
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
  else if (ts.wanter === c || ts.moreWanters?.includes(c)) return false;
  else (ts.moreWanters ??= []).push(c);
  return true;
}

/** Removes a client wanting this key; false if it did not. */
export function removeWanter(ts: TaskState, c: ClientRecord): boolean {
  if (ts.wanter === c) {
    ts.wanter = ts.moreWanters?.shift() ?? null;
    ts.ticket = -1;
    if (ts.moreWanters?.length === 0) ts.moreWanters = null;
    return true;
  }
  if (!ts.moreWanters) return false;
  const i = ts.moreWanters.indexOf(c);
  if (i < 0) return false;
  ts.moreWanters.splice(i, 1);
  if (ts.moreWanters.length === 0) ts.moreWanters = null;
  return true;
}

export function forEachWanter(ts: TaskState, fn: (c: ClientRecord) => void): void {
  if (ts.wanter) fn(ts.wanter);
  if (ts.moreWanters) for (const c of ts.moreWanters) fn(c);
}

export function hasRestrictions(ts: TaskState): boolean {
  return ts.resources !== null || ts.workers !== null;
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
  /** Tasks of a submission in parts, held until its last part (null: none). */
  held: TaskState[] | null = null;
  constructor(readonly id: string) {}
}
