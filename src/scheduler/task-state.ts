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

export class TaskState {
  state: TaskStatus = 'released';
  /** Shared empty array until linked. */
  deps: TaskState[] = NONE;
  /** Shared empty array until the first dependent (most tasks never get one): push via addDependent. */
  dependents: TaskState[] = NONE;
  /** Dependencies not in memory (meaningful while waiting). */
  waitingOn = 0;
  /** Dependents that still need this task's data (in a `needsDeps` state). */
  waiters = 0;
  /** Dependents not yet forgotten. */
  liveDependents = 0;
  /** The client holding a future for this key, and any others beyond the first. */
  wanter: ClientState | null = null;
  moreWanters: ClientState[] | null = null;
  /** The workers holding the result: shared and never changed in place (see addHolder). */
  whoHas: readonly WorkerState[] = NONE;
  nbytes = 0;
  processingOn: WorkerState | null = null;
  /** Attempt number of the current run; results of older runs are stale. */
  run = 0;
  /** The worker said it handed this task to an executor thread. */
  executing = false;
  /** Workers that died while running this task. */
  suspicious = 0;
  retriesLeft: number;
  error: SerializedError | null = null;
  noWorkerSince = 0;
  /** Static graph order (lower runs first); -1 until ordered. */
  order = -1;
  /** Seconds this run was expected to take (added to its worker's occupancy). */
  expected = 0;
  /** In the scheduler's root-task queue (entries are removed lazily). */
  inQueue = false;

  constructor(
    readonly key: string,
    /** The function (null for scattered data)... */
    readonly fn: FnEntry | null,
    /** ...and its msgpack arguments: bytes argStart..argEnd of the graph message's buffer (shared, not a view per task). */
    readonly argBuf: Uint8Array | null,
    readonly argStart: number,
    readonly argEnd: number,
    readonly group: TaskGroup,
    readonly priority: number,
    readonly retries: number,
    readonly resources: Record<string, number> | null,
    readonly workers: string[] | null,
  ) {
    this.retriesLeft = retries;
  }

  /** The arguments' bytes (a new view: for the rare comparisons, not the hot path). */
  get args(): Uint8Array | null {
    return this.argBuf ? this.argBuf.subarray(this.argStart, this.argEnd) : null;
  }

  addDependent(d: TaskState): void {
    if (this.dependents === NONE) this.dependents = [d];
    else this.dependents.push(d);
  }

  /**
   * Adds a holder. Lists of holders are never changed in place: a task held by
   * one worker (almost all) shares that worker's one-element list, so a
   * result in memory costs no allocation here.
   */
  addHolder(w: WorkerState): void {
    if (this.whoHas === NONE) this.whoHas = w.only;
    else if (!this.whoHas.includes(w)) this.whoHas = [...this.whoHas, w];
  }

  /** Removes a holder; false if it was not one. */
  removeHolder(w: WorkerState): boolean {
    if (!this.whoHas.includes(w)) return false;
    this.whoHas = this.whoHas.length === 1 ? NONE : this.whoHas.filter((x) => x !== w);
    return true;
  }

  clearHolders(): void {
    this.whoHas = NONE;
  }

  get wanted(): boolean {
    return this.wanter !== null;
  }

  /** Still needed by a client or by a dependent that has not run yet. */
  get needed(): boolean {
    return this.wanter !== null || this.waiters > 0;
  }

  /** Adds a client wanting this key; false if it already did. */
  addWanter(c: ClientState): boolean {
    if (this.wanter === null) this.wanter = c;
    else if (this.wanter === c || this.moreWanters?.includes(c)) return false;
    else (this.moreWanters ??= []).push(c);
    return true;
  }

  /** Removes a client wanting this key; false if it did not. */
  removeWanter(c: ClientState): boolean {
    if (this.wanter === c) {
      this.wanter = this.moreWanters?.shift() ?? null;
      if (this.moreWanters?.length === 0) this.moreWanters = null;
      return true;
    }
    if (!this.moreWanters) return false;
    const i = this.moreWanters.indexOf(c);
    if (i < 0) return false;
    this.moreWanters.splice(i, 1);
    if (this.moreWanters.length === 0) this.moreWanters = null;
    return true;
  }

  forEachWanter(fn: (c: ClientState) => void): void {
    if (this.wanter) fn(this.wanter);
    if (this.moreWanters) for (const c of this.moreWanters) fn(c);
  }

  get hasRestrictions(): boolean {
    return this.resources !== null || this.workers !== null;
  }
}

export class WorkerState {
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
  readonly only: readonly WorkerState[];
}

export class ClientState {
  /** How many keys this client wants (the tasks record which clients want them). */
  wants = 0;
  constructor(readonly id: string) {}
}
