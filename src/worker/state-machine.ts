/**
 * The worker's decisions, as a pure state machine. Events in (tasks from the
 * scheduler, data from peers, results from executor threads), instructions
 * out (fetch from a peer, run on a thread, report to the scheduler). The
 * process around it owns the sockets and threads.
 *
 * Data: results this worker computed (or that were scattered to it) are
 * "owned": kept until the scheduler frees them. Dependencies fetched from
 * peers are "borrowed": kept while a local task needs them, then dropped, so
 * the scheduler never has to track copies it did not ask for.
 */
import type { SerializedError } from '../errors.ts';
import type { FnDef } from '../protocol/messages.ts';
import { Heap } from '../util/heap.ts';
import { fractionList, objectList } from '../util/lists.ts';

/** 'dropped': no longer this worker's (freed, or its input is gone); a record still in the ready heap is skipped. */
type WTaskState = 'fetching' | 'ready' | 'blocked' | 'executing' | 'dropped';

/**
 * The changes a task's state may make here, from each state; every change
 * goes through setTaskState, which records any other (a bug, reported by
 * checkInvariants). A task starts `fetching` (its inputs, if any, on their
 * way) and leaves the books when its result or error is reported.
 */
export const TASK_TRANSITIONS: Readonly<Record<WTaskState, readonly WTaskState[]>> = {
  // Its inputs are here; or it runs right behind the task computing its last input (a chain); or it is freed.
  fetching: ['ready', 'executing', 'dropped'],
  // Handed to a thread; or its resources are taken; or freed.
  ready: ['executing', 'blocked', 'dropped'],
  // Its resources came back (handed to a thread), are still taken, or it is freed.
  blocked: ['executing', 'blocked', 'dropped'],
  // Given back by its thread (the thread died under another task, or its input was not there): ready or fetching again, or dropped.
  executing: ['ready', 'fetching', 'dropped'],
  dropped: [],
};

/** A task here; it is also what goes to the executor (see ExecTask), with no copy. */
interface WTask extends Omit<ComputeTask, 'who' | 'ephemeral' | 'sizes'>, ExecTask {
  state: WTaskState;
  /** Dependencies not yet local. */
  missing: number;
  /** Freed by the scheduler while running: discard the result. */
  cancelled: boolean;
  /** Dispatched right behind its producer on the same thread (does not count against the executing limit). */
  chained: boolean;
  /** Running, but gave its thread slot back (TaskContext.secede): not counted in `executing`. */
  seceded: boolean;
  /** Its key's slot: `slot.task === this` while the task is this worker's. */
  slot: Slot;
  /** Bytes of inputs given to its thread (not held here any more), counted as borrowed until it ends. */
  givenBytes: number;
}

/**
 * Everything this worker holds under one key, found with one map lookup: the
 * task computing it here and its value. A slot stays in the map while either
 * is set.
 */
interface Slot {
  task: WTask | null;
  data: DataEntry | null;
}

interface DataEntry {
  bytes: Uint8Array;
  owned: boolean;
  /** Local tasks (not yet finished) that need this as an input. */
  refs: number;
}

interface Fetch {
  /** Its size as the scheduler said (0: unknown). */
  bytes: number;
  /** Holders not tried yet. */
  holders: string[];
  tried: string[];
  /** The peer asked right now, or null while waiting to be asked. */
  peer: string | null;
  waiters: WTask[];
  /** The scheduler asked for a copy to keep (acquire): stored as this worker's own and reported. */
  acquire: boolean;
  /** Bytes counted in `incoming` while its request is out (0: not asked yet). */
  inFlight: number;
}

/** One task from a compute message. */
export interface ComputeTask {
  key: string;
  run: number;
  fn: number;
  args: Uint8Array;
  order: number;
  priority: number;
  deps: string[];
  /** Data-server addresses holding each dependency. */
  who: string[][];
  /** Each dependency's size in bytes, as the scheduler last heard (absent: unknown); fetches are batched by it. */
  sizes?: ArrayLike<number> | undefined;
  /** Only the task sent along behind it needs its value (see the compute message): it may be handed on, not kept. */
  ephemeral?: boolean;
  resources: Record<string, number> | null;
}

/** A task as the executor gets it (set when it is dispatched). */
export interface ExecTask {
  key: string;
  run: number;
  /** The one input (in deps, with empty depData) the executor thread itself is computing. */
  after: string | null;
  /** A task dispatched with it takes its value in memory (`after`): the thread keeps the value. */
  keep: boolean;
  /** ...and may hand it on without a copy for this worker (ComputeTask.ephemeral). */
  ephemeral: boolean;
  /** Function id (see the `define` instruction) and msgpack arguments. */
  fn: number;
  args: Uint8Array;
  deps: string[];
  /** The inputs' bytes, in the order of deps (emptied once handed to a thread). */
  depData: Uint8Array[];
  /**
   * Indices of depData whose buffers the executor may give the thread
   * (transfer) instead of copying: the worker's last copy, borrowed for this
   * task alone, and already let go of here (null: none).
   */
  give: number[] | null;
  /** Indices of depData that other tasks here take too (null: none): the executor may keep them where it runs them. */
  share: number[] | null;
}

export type WorkerInstruction =
  | { type: 'send'; msg: object }
  | { type: 'fetch'; peer: string; keys: string[] }
  | { type: 'define'; ids: number[]; defs: FnDef[] }
  /** Functions the scheduler forgot: the executor drops them. */
  | { type: 'forget'; ids: number[] }
  | { type: 'execute'; tasks: ExecTask[] }
  /** Tasks freed while they run: the executor tells them (their signal aborts). */
  | { type: 'cancel'; keys: string[] }
  /** Write these results to disk: they left memory (spilled), the bytes are the writer's now. */
  | { type: 'spill'; entries: [key: string, bytes: Uint8Array][] }
  /** Read these spilled results back (then call `unspilled`). */
  | { type: 'unspill'; keys: string[] }
  /** Spilled results freed: delete them from disk. */
  | { type: 'drop-spilled'; keys: string[] }
  /** The process is over its memory limit's last threshold: stop it (its nanny starts a fresh one). */
  | { type: 'terminate'; reason: string };

export interface ExecResult {
  key: string;
  run: number;
  /** The task as dispatched (saves finding it by key); absent in results built by hand. */
  task?: ExecTask;
  /** msgpack bytes of the result, or the error. */
  bytes?: Uint8Array;
  error?: SerializedError;
  /** Seconds the function ran. */
  duration: number;
  /** The thread did not have the `after` input: dispatch the task again, normally. */
  requeue?: boolean;
  /** The value (this many bytes) went to the task behind it on the thread; no copy is here (ExecTask.ephemeral). */
  handedOn?: number;
}

export interface WorkerConfig {
  nthreads: number;
  resources: Record<string, number>;
  /** Own data-server address: a holder equal to it means "already here". */
  address: string;
  /** Bytes (0: no limit). Results held go to disk past MEMORY.target of it, and so on (see memory()). */
  memoryLimit?: number;
  /**
   * A worker paused (memory past MEMORY.pause) that cannot spill (its disk
   * is full) would keep the tasks sent to it waiting for ever: after this
   * long it fails them, saying why (default 30,000).
   */
  pausedTimeoutMs?: number;
}

/** While spills fail (disk full), one is tried again this often, not on every look: a full disk is a state, not a loop. */
export const SPILL_RETRY_MS = 5000;

/**
 * Dask's thresholds, as fractions of the memory limit: results held in
 * memory past `target` are spilled to disk, oldest first; a process whose
 * memory passes `spill` spills until its results are under `target`; past
 * `pause` it starts no task; past `terminate` it stops (its nanny starts a
 * fresh one).
 */
export const MEMORY = { target: 0.6, spill: 0.7, pause: 0.8, terminate: 0.95 } as const;

const EMPTY = new Uint8Array(0);
const NO_DATA: Uint8Array[] = [];
const NO_TASKS: readonly WTask[] = [];

/** Bytes asked of one peer in one request at most (unless one value is larger). */
const FETCH_BATCH_BYTES = 32 * 1024 * 1024;

/**
 * Under a memory limit, bytes of inputs on their way here and here for
 * tasks not yet ended at most, as a share of the limit: past it, further
 * requests wait for tasks to end, so many large inputs asked for at once
 * cannot overrun the limit (borrowed inputs cannot be spilled). Dask's
 * transfer limit is 10% too, counting only transfers under way. One request
 * always goes, so a task whose inputs alone exceed it still runs.
 */
const INCOMING_SHARE = 0.1;

/** An input this large, borrowed for one task, is moved to its thread instead of copied (see giveable). */
const GIVE_BYTES = 64 * 1024;

/** Tasks of functions this long or longer (or not measured yet) go to a thread only when one is free (see dispatch). */
const STEALABLE_SECONDS = 0.005;

/** Tasks of functions faster than this are not reported as executing (see dispatch). */
const SLOW_SECONDS = 0.001;

/** The columns of the next `finished` and `executing` messages (see lists.ts for why not `[]`). */
function newFinished(): { op: 'finished'; keys: string[]; runs: number[]; nbytes: number[]; durations: number[] } {
  return { op: 'finished', keys: objectList<string>(), runs: [], nbytes: [], durations: fractionList() };
}

function newStarted(): { op: 'executing'; keys: string[]; runs: number[] } {
  return { op: 'executing', keys: objectList<string>(), runs: [] };
}

function before(a: WTask, b: WTask): boolean {
  return a.priority !== b.priority ? a.priority > b.priority : a.order < b.order;
}

export class WorkerState {
  /** Turns through the holders of inputs fetched (see compute). */
  private spread = 0;
  private readonly slots = new Map<string, Slot>();
  /** Slots with data. */
  private stored = 0;
  private readonly fetches = new Map<string, Fetch>();
  /** Tasks waiting for the result of a task running here (sent along speculatively). */
  private readonly localWaiters = new Map<string, WTask[]>();
  private readonly ready = new Heap<WTask>(before);
  private blocked: WTask[] = [];
  /** Task state changes TASK_TRANSITIONS does not allow, as seen (checkInvariants reports the first). */
  private readonly illegal: string[] = [];
  /** Spilling fails (the disk is full): since when, and why. Null while it works. */
  spillBlocked: { since: number; reason: string } | null = null;
  /** When a spill was last tried while blocked. */
  private spillTriedAt = 0;
  /** The time, as the last memory look said. */
  private now = 0;
  private readonly freeResources: Record<string, number>;
  private executing = 0;
  /** Of those, tasks dispatched right behind their producer (see dispatchChain). */
  private chained = 0;
  private out = objectList<WorkerInstruction>();
  private finished = newFinished();
  private started = newStarted();
  /** Per peer, batches of keys to ask for: at most FETCH_BATCH_BYTES each (as far as sizes are known). */
  private toFetch = new Map<string, { keys: string[]; bytes: number }[]>();
  /** Bytes of the values asked of peers and not yet here, and of the borrowed ones here (see INCOMING_SHARE). */
  private incoming = 0;
  private borrowedBytes = 0;
  private toExecute = objectList<ExecTask>();
  private toCancel: string[] = [];
  /** Average task run time here (seconds), to size how many tasks a thread gets at once. */
  private avgDuration = -1;
  /** Average run time per function id (ids are small and dense: the scheduler numbers functions from 0). */
  private fnDuration = fractionList();
  storedBytes = 0;
  tasksExecuted = 0;
  /** Keys reported finished whose value was handed on, not kept (ExecResult.handedOn): asked for, they are lost. */
  private readonly handedOn = new Set<string>();
  /** Results this worker owns that are on disk, not in memory: their sizes. */
  private readonly spilled = new Map<string, number>();
  spilledBytes = 0;
  /** Tasks waiting for spilled inputs to be read back, by key. */
  private readonly unspilling = new Map<string, WTask[]>();
  /** The process's memory as last measured (memory()), and whether it is over `pause`. */
  private rss = 0;
  paused = false;
  private terminating = false;
  /** storedBytes when a look for results to spill found none (-1: none such). */
  private nothingToSpillAt = -1;

  constructor(readonly config: WorkerConfig) {
    this.freeResources = { ...config.resources };
  }

  // ------------------------------------------------------------------ queries

  /** Whether this worker has anything under `key` (a result, or a task computing it). */
  knows(key: string): boolean {
    return this.slots.has(key) || this.spilled.has(key);
  }

  /**
   * A fresh machine with this one's results (owned, in memory or on disk)
   * and nothing else: after the scheduler was lost, the tasks it had given
   * are its to give again; the results may still be wanted.
   */
  keepingResults(): WorkerState {
    const next = new WorkerState(this.config);
    for (const [key, slot] of this.slots) {
      const d = slot.data;
      if (d && d.owned) next.store(key, d.bytes, true);
    }
    for (const [key, size] of this.spilled) next.spilled.set(key, size);
    next.spilledBytes = this.spilledBytes;
    next.tasksExecuted = this.tasksExecuted;
    return next;
  }

  /** The results this worker owns (in memory or on disk), with their sizes. */
  heldResults(): { keys: string[]; nbytes: number[] } {
    const keys: string[] = [];
    const nbytes: number[] = [];
    for (const [key, slot] of this.slots) {
      if (!slot.data?.owned) continue;
      keys.push(key);
      nbytes.push(slot.data.bytes.length);
    }
    for (const [key, size] of this.spilled) {
      keys.push(key);
      nbytes.push(size);
    }
    return { keys, nbytes };
  }

  /** Whether `key`'s result is here on disk (peers asking for it are served from there). */
  isSpilled(key: string): boolean {
    return this.spilled.has(key);
  }

  /**
   * The process's memory now (bytes of RSS): results spill to disk past the
   * limit's thresholds, tasks pause, and past the last the process stops
   * (MEMORY). Also checked as results arrive (takeInstructions).
   */
  memory(rss: number, now = this.now): void {
    this.rss = rss;
    this.now = now;
    const limit = this.config.memoryLimit ?? 0;
    if (limit <= 0) return;
    this.paused = rss > MEMORY.pause * limit;
    if (rss > MEMORY.terminate * limit && !this.terminating) {
      this.terminating = true;
      this.out.push({ type: 'terminate', reason: `memory ${rss} bytes is over ${Math.round(MEMORY.terminate * 100)}% of the limit (${limit})` });
    }
    this.failIfStuck(limit);
  }

  /**
   * Paused with nowhere to spill for longer than `pausedTimeoutMs`: nothing
   * here can start until memory is freed, so the tasks waiting to start fail,
   * saying why (the scheduler errs or retries them; their clients hear it).
   */
  private failIfStuck(limit: number): void {
    const b = this.spillBlocked;
    if (!this.paused || b === null || this.now - b.since < (this.config.pausedTimeoutMs ?? 30_000)) return;
    const error = {
      name: 'WorkerPausedError',
      message: `the worker's memory is past ${Math.round(MEMORY.pause * 100)}% of its limit (${limit} bytes) and it cannot spill results to disk (${b.reason}) for ${Math.round((this.now - b.since) / 1000)} s: free space in its --local-directory, or release results`,
    };
    const waiting: WTask[] = [...this.blocked];
    while (this.ready.size > 0) waiting.push(this.ready.pop() as WTask);
    for (const t of waiting) {
      if (t.state !== 'ready' && t.state !== 'blocked') continue;
      this.clearTask(t);
      this.out.push({ type: 'send', msg: { op: 'erred', key: t.key, run: t.run, error } });
    }
  }

  /** A spilled result read back from disk. */
  unspilled(key: string, bytes: Uint8Array): void {
    const waiters = this.unspilling.get(key) ?? [];
    this.unspilling.delete(key);
    const size = this.spilled.get(key);
    if (size === undefined) return; // freed meanwhile
    this.spilled.delete(key);
    this.spilledBytes -= size;
    const entry = this.store(key, bytes, true);
    for (const t of waiters) {
      if (t.slot.task !== t) continue;
      entry.refs++;
      if (--t.missing === 0) this.makeReady(t);
    }
  }

  /**
   * A spill that could not be written (disk full): the result stays in
   * memory, and spilling is blocked until a retry succeeds. True when this
   * started the blocked state (say it once).
   */
  spillFailed(key: string, bytes: Uint8Array, reason: string): boolean {
    const size = this.spilled.get(key);
    if (size !== undefined) {
      this.spilled.delete(key);
      this.spilledBytes -= size;
      this.store(key, bytes, true);
    }
    this.spillTriedAt = this.now;
    if (this.spillBlocked !== null) return false;
    this.spillBlocked = { since: this.now, reason };
    return true;
  }

  /** A spill was written: true when that ended a blocked state (say it once). */
  spillWritten(): boolean {
    if (this.spillBlocked === null) return false;
    this.spillBlocked = null;
    return true;
  }

  getData(key: string): Uint8Array | undefined {
    return this.slots.get(key)?.data?.bytes;
  }

  get storedCount(): number {
    return this.stored;
  }

  /** Tasks a thread may hold at once: deeper for tiny tasks, 1 for long ones. */
  get maxExecuting(): number {
    if (this.avgDuration < 0) return this.config.nthreads;
    const perThread = Math.max(1, Math.min(512, Math.round(0.005 / Math.max(this.avgDuration, 1e-7))));
    return this.config.nthreads * perThread;
  }

  // ------------------------------------------------------------------ events

  /** Functions the scheduler defined for later compute messages: pass them to the executor. */
  defineFns(ids: number[], defs: FnDef[]): void {
    this.out.push({ type: 'define', ids, defs });
  }

  /** Functions no task refers to any more (scheduler/functions.ts): the executor drops them. */
  forgetFns(ids: number[]): void {
    this.out.push({ type: 'forget', ids });
  }

  compute(msg: ComputeTask): void {
    let slot = this.slots.get(msg.key);
    const existing = slot?.task;
    if (existing) {
      if (existing.state === 'executing' && existing.cancelled) {
        // Freed, then sent again before the old run ended: adopt the new run.
        existing.cancelled = false;
        existing.run = msg.run;
      }
      return;
    }
    if (slot?.data?.owned) {
      // Already computed here (a rerun after a scheduler-side reschedule): report it again.
      this.reportFinished(msg.key, msg.run, slot.data.bytes.length, 0);
      return;
    }
    slot ??= this.addSlot(msg.key);
    const deps = msg.deps;
    const t: WTask = {
      key: msg.key,
      run: msg.run,
      fn: msg.fn,
      args: msg.args,
      order: msg.order,
      priority: msg.priority,
      deps,
      resources: msg.resources && Object.keys(msg.resources).length > 0 ? msg.resources : null,
      state: 'fetching',
      after: null,
      keep: false,
      ephemeral: msg.ephemeral === true,
      depData: NO_DATA,
      give: null,
      share: null,
      missing: 0,
      cancelled: false,
      chained: false,
      seceded: false,
      givenBytes: 0,
      slot,
    };
    slot.task = t;
    let asks: [string, Fetch][] | null = null;
    for (let i = 0; i < deps.length; i++) {
      const dep = deps[i] as string;
      const depSlot = this.slots.get(dep);
      const local = depSlot?.data;
      if (local) {
        local.refs++;
        continue;
      }
      t.missing++;
      if (this.spilled.has(dep)) {
        // On disk here: read back, not fetched.
        const list = this.unspilling.get(dep);
        if (list) list.push(t);
        else {
          this.unspilling.set(dep, [t]);
          this.out.push({ type: 'unspill', keys: [dep] });
        }
        continue;
      }
      if (depSlot?.task && (msg.who[i] ?? []).includes(this.config.address)) {
        const list = this.localWaiters.get(dep);
        if (list) list.push(t);
        else this.localWaiters.set(dep, [t]);
        continue;
      }
      const f = this.fetches.get(dep);
      if (f) {
        f.waiters.push(t);
        continue;
      }
      const holders = (msg.who[i] ?? []).filter((h) => h !== this.config.address);
      // Spread load over holders: start with each in turn (a counter, not randomness: the machine stays deterministic).
      if (holders.length > 1) {
        const j = this.spread++ % holders.length;
        [holders[0], holders[j]] = [holders[j] as string, holders[0] as string];
      }
      const fetch: Fetch = { bytes: msg.sizes?.[i] ?? 0, holders, tried: [], peer: null, waiters: [t], acquire: false, inFlight: 0 };
      this.fetches.set(dep, fetch);
      (asks ??= []).push([dep, fetch]);
    }
    // Asked only once every input is accounted for: an input nobody else holds drops the task at once, which must find all its refs in place.
    if (asks) for (const [dep, fetch] of asks) this.askNext(dep, fetch);
    if (t.missing === 0) this.makeReady(t);
  }

  free(keys: string[]): void {
    let dropped: string[] | null = null;
    for (const key of keys) {
      if (this.handedOn.size > 0) this.handedOn.delete(key);
      const size = this.spilled.get(key);
      if (size !== undefined) {
        this.spilled.delete(key);
        this.spilledBytes -= size;
        (dropped ??= []).push(key);
      }
      const slot = this.slots.get(key);
      if (!slot) continue;
      const t = slot.task;
      if (t) {
        if (t.state !== 'executing') this.dropTask(t);
        else if (!t.cancelled) {
          t.cancelled = true;
          this.toCancel.push(key);
        }
      }
      const d = slot.data;
      if (d && d.owned) {
        this.setOwned(d, false);
        if (d.refs === 0) this.deleteData(key, slot);
      }
    }
    if (dropped) this.out.push({ type: 'drop-spilled', keys: dropped });
  }

  /** A task running here gave its thread slot back (`away`: it seceded), or took it again (it rejoined): other tasks may start meanwhile. */
  secede(task: ExecTask, away: boolean): void {
    const t = task as WTask;
    if (t.state !== 'executing' || t.seceded === away) return;
    t.seceded = away;
    this.executing += away ? -1 : 1;
    // The scheduler counts it out of (or back into) this worker's busy threads too, or it would send nothing more here.
    this.out.push({ type: 'send', msg: { op: 'secede', key: t.key, run: t.run, away } });
  }

  /**
   * Work stealing: drops each task asked (by key and run) that has not
   * started here, and tells the scheduler which it dropped; one that started,
   * ended or is another run stays as it is.
   */
  steal(keys: readonly string[], runs: ArrayLike<number>): void {
    const released = keys.map((key, i) => {
      const t = this.slots.get(key)?.task;
      if (!t || t.run !== runs[i] || t.state === 'executing' || t.state === 'dropped') return false;
      this.dropTask(t);
      return true;
    });
    this.out.push({ type: 'send', msg: { op: 'steal-reply', keys: [...keys], runs: Float64Array.from(runs), released } });
  }

  /** Whether `key` was handed on (and forgets that): the scheduler must hear it is lost here. */
  takeHandedOn(key: string): boolean {
    return this.handedOn.delete(key);
  }

  /** Scattered values from a client: owned from now on. Returns their sizes. */
  put(keys: string[], blobs: Uint8Array[]): number[] {
    return keys.map((key, i) => {
      const bytes = blobs[i] as Uint8Array;
      this.store(key, bytes, true);
      return bytes.length;
    });
  }

  /**
   * A value given for a task here that has not started (a client giving
   * back a lost result, client/restore.ts): the task is done with it, as if
   * it had run, and its local dependents take it. False when there is no
   * such task (none, or it runs already).
   */
  fillIn(key: string, bytes: Uint8Array): boolean {
    const slot = this.slots.get(key);
    const t = slot?.task;
    if (!slot || !t || slot.data || t.state === 'executing' || t.state === 'dropped') return false;
    this.dropTask(t);
    const waiters = this.localWaitersOf(key);
    if (waiters) this.localWaiters.delete(key);
    const entry = this.store(key, bytes, true);
    this.reportFinished(key, t.run, bytes.length, 0);
    for (const w of waiters ?? []) {
      if (w.slot.task !== w) continue;
      entry.refs++;
      if (--w.missing === 0 && w.state === 'fetching') this.makeReady(w);
    }
    return true;
  }

  /**
   * The scheduler wants copies of these results kept here (a replica, or a
   * retiring worker's data): fetched from `who` like inputs, then kept as
   * this worker's own until freed, and reported (`acquired`).
   */
  acquire(keys: readonly string[], who: readonly string[][], sizes: ArrayLike<number>): void {
    const here: string[] = [];
    const nbytes: number[] = [];
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as string;
      const d = this.slots.get(key)?.data;
      if (d) {
        this.setOwned(d, true);
        here.push(key);
        nbytes.push(d.bytes.length);
        continue;
      }
      const onDisk = this.spilled.get(key);
      if (onDisk !== undefined) {
        here.push(key);
        nbytes.push(onDisk);
        continue;
      }
      const f = this.fetches.get(key);
      if (f) {
        f.acquire = true;
        continue;
      }
      const fetch: Fetch = { bytes: sizes[i] ?? 0, holders: (who[i] ?? []).filter((h) => h !== this.config.address), tried: [], peer: null, waiters: [], acquire: true, inFlight: 0 };
      this.fetches.set(key, fetch);
      this.askNext(key, fetch);
    }
    if (here.length > 0) this.out.push({ type: 'send', msg: { op: 'acquired', keys: here, nbytes: Float64Array.from(nbytes), missing: [] } });
  }

  fetched(peer: string, keys: string[], blobs: (Uint8Array | null)[]): void {
    let acquired: string[] | null = null;
    const nbytes: number[] = [];
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as string;
      const f = this.fetches.get(key);
      if (!f || f.peer !== peer) continue;
      const bytes = blobs[i];
      if (!bytes) {
        this.fetchFailedKey(key, f);
        continue;
      }
      this.landed(f);
      this.fetches.delete(key);
      const live = f.waiters.filter((t) => t.slot.task === t);
      if (live.length === 0 && !f.acquire) continue;
      const entry = this.store(key, bytes, f.acquire);
      for (const t of live) {
        entry.refs++;
        if (--t.missing === 0) this.makeReady(t);
      }
      if (f.acquire) {
        (acquired ??= []).push(key);
        nbytes.push(bytes.length);
      }
    }
    if (acquired) this.out.push({ type: 'send', msg: { op: 'acquired', keys: acquired, nbytes: Float64Array.from(nbytes), missing: [] } });
  }

  fetchFailed(peer: string, keys: string[]): void {
    for (const key of keys) {
      const f = this.fetches.get(key);
      if (f && f.peer === peer) this.fetchFailedKey(key, f);
    }
  }

  executed(results: ExecResult[]): void {
    for (const r of results) {
      const t = (r.task as WTask | undefined) ?? this.slots.get(r.key)?.task;
      // A seceded task gave its slot back already.
      if (t?.seceded) t.seceded = false;
      else this.executing--;
      if (t?.chained) {
        t.chained = false;
        this.chained--;
      }
      if (t && t.givenBytes > 0) {
        this.borrowedBytes -= t.givenBytes;
        t.givenBytes = 0;
      }
      if (!t || t.state !== 'executing') continue;
      if (r.requeue) {
        // Requeued (its thread died under another task, or its input was not on that thread): its resources come back.
        this.releaseResources(t);
        if (t.give !== null) {
          // Its thread had taken inputs given to it, and they went with the thread: the scheduler sends the task again.
          this.out.push({ type: 'send', msg: { op: 'missing', key: t.key, run: t.run, dep: t.deps[t.give[0] as number] as string, holders: [] } });
          this.dropTask(t);
          continue;
        }
        if (t.after !== null && this.handedOn.has(t.after)) {
          // Its input was handed on to it and is gone: the scheduler computes it again.
          this.out.push({ type: 'send', msg: { op: 'missing', key: t.key, run: t.run, dep: t.after, holders: [this.config.address] } });
          this.dropTask(t);
          continue;
        }
        // Its input was not on that thread after all: run it normally once the input is here.
        t.after = null;
        if (t.cancelled) this.dropTask(t);
        else if (t.missing === 0) this.makeReady(t);
        else this.setTaskState(t, 'fetching');
        continue;
      }
      this.releaseInputs(t);
      this.releaseResources(t);
      this.tasksExecuted++;
      this.avgDuration = this.avgDuration < 0 ? r.duration : this.avgDuration + (r.duration - this.avgDuration) * 0.05;
      const fd = this.fnDuration[t.fn];
      this.fnDuration[t.fn] = fd === undefined ? r.duration : fd + (r.duration - fd) * 0.2;
      const waiters = this.localWaitersOf(t.key);
      if (waiters) this.localWaiters.delete(t.key);
      if (t.cancelled) {
        this.clearTask(t);
        continue;
      }
      if (r.handedOn !== undefined) {
        // Its value went to the task behind it on the thread: reported done, nothing kept here.
        this.clearTask(t);
        this.handedOn.add(t.key);
        this.reportFinished(t.key, t.run, r.handedOn, r.duration);
        for (const w of waiters ?? []) {
          if (w.slot.task !== w) continue;
          if (w.state === 'executing') w.missing--;
          else {
            // Not on that thread after all: it cannot have the value; the scheduler computes it again.
            this.out.push({ type: 'send', msg: { op: 'missing', key: w.key, run: w.run, dep: t.key, holders: [this.config.address] } });
            this.dropTask(w);
          }
        }
        continue;
      }
      if (r.bytes) {
        const entry = this.storeIn(t.slot, r.bytes, true);
        t.slot.task = null;
        this.reportFinished(t.key, t.run, r.bytes.length, r.duration);
        for (const w of waiters ?? []) {
          if (w.slot.task !== w) continue;
          entry.refs++;
          // A task dispatched early (ready or executing) already holds its place.
          if (--w.missing === 0 && w.state === 'fetching') this.makeReady(w);
        }
      } else {
        this.clearTask(t);
        this.out.push({ type: 'send', msg: { op: 'erred', key: t.key, run: t.run, error: r.error ?? { name: 'Error', message: 'task failed without an error' } } });
      }
    }
  }

  /** The instructions accumulated since the last call, with ready tasks dispatched. */
  takeInstructions(): WorkerInstruction[] {
    this.spillIfNeeded();
    this.dispatch();
    if (this.finished.keys.length > 0) {
      const f = this.finished;
      this.out.push({ type: 'send', msg: { op: 'finished', keys: f.keys, runs: Float64Array.from(f.runs), nbytes: Float64Array.from(f.nbytes), durations: Float64Array.from(f.durations) } });
      this.finished = newFinished();
    }
    // Paused (memory past MEMORY.pause): no new transfers in either, until it is back under.
    if (this.toFetch.size > 0 && !this.paused) this.askPeers();
    if (this.toCancel.length > 0) {
      this.out.push({ type: 'cancel', keys: this.toCancel });
      this.toCancel = [];
    }
    if (this.toExecute.length > 0) {
      this.out.push({ type: 'execute', tasks: this.toExecute });
      this.toExecute = objectList<ExecTask>();
    }
    if (this.started.keys.length > 0) {
      this.out.push({ type: 'send', msg: { op: 'executing', keys: this.started.keys, runs: Float64Array.from(this.started.runs) } });
      this.started = newStarted();
    }
    const out = this.out;
    this.out = objectList<WorkerInstruction>();
    return out;
  }

  /**
   * For tests: the first broken bookkeeping invariant, or null. O(tasks).
   * `stored` and `storedBytes` count the slots with data; a slot holds a
   * task or data; a task's slot is its own; a value's `refs` is the number
   * of live tasks here that use it (one still fetching counts only the
   * inputs already here); a borrowed value nothing uses is gone; the
   * executor holds `executing` tasks, `chained` of them behind another.
   */
  checkInvariants(): string | null {
    if (this.illegal.length > 0) return `a transition TASK_TRANSITIONS does not allow: ${this.illegal[0]}`;
    let stored = 0;
    let bytes = 0;
    const refs = new Map<string, number>();
    for (const [key, slot] of this.slots) {
      if (!slot.task && !slot.data) return `slot ${key} holds neither a task nor data`;
      if (slot.task && (slot.task.slot !== slot || slot.task.key !== key)) return `the task in slot ${key} is not that slot's`;
      if (slot.data) {
        stored++;
        bytes += slot.data.bytes.length;
      }
      const t = slot.task;
      if (!t || t.state === 'dropped') continue;
      for (const dep of t.deps) {
        if (t.state === 'fetching' && (this.fetches.get(dep)?.waiters.includes(t) || this.localWaiters.get(dep)?.includes(t))) continue;
        refs.set(dep, (refs.get(dep) ?? 0) + 1);
      }
    }
    if (stored !== this.stored || bytes !== this.storedBytes) return `counts ${this.stored} values of ${this.storedBytes} bytes; ${stored} of ${bytes} are here`;
    for (const [key, slot] of this.slots) {
      const d = slot.data;
      if (!d) continue;
      const n = refs.get(key) ?? 0;
      if (d.refs !== n) return `value ${key} counts ${d.refs} refs; ${n} live tasks use it`;
      if (!d.owned && d.refs === 0) return `borrowed value ${key} is kept though nothing uses it`;
    }
    if (this.chained < 0 || this.chained > this.executing) return `${this.chained} chained of ${this.executing} executing`;
    let borrowed = 0;
    for (const slot of this.slots.values()) {
      if (slot.data && !slot.data.owned) borrowed += slot.data.bytes.length;
      if (slot.task) borrowed += slot.task.givenBytes;
    }
    if (borrowed !== this.borrowedBytes) return `counts ${this.borrowedBytes} bytes borrowed; ${borrowed} are here`;
    let incoming = 0;
    for (const f of this.fetches.values()) incoming += f.inFlight;
    if (incoming !== this.incoming) return `counts ${this.incoming} bytes incoming; the requests out hold ${incoming}`;
    return null;
  }

  // ------------------------------------------------------------------ internals

  /**
   * Past the limit's `target` in results held (or `spill` in process
   * memory), the oldest results no task here is using go to disk until the
   * held bytes are under `target`.
   */
  private spillIfNeeded(): void {
    const limit = this.config.memoryLimit ?? 0;
    if (limit <= 0) return;
    // Over `spill` in process memory, the held results go further under `target` by the excess: memory not theirs counts too.
    const excess = Math.max(0, this.rss - MEMORY.spill * limit);
    const target = Math.max(0, MEMORY.target * limit - excess);
    if (this.storedBytes <= target && excess === 0) return;
    // Everything held is in use, as at the last look: no scan until that changes.
    if (this.storedBytes === this.nothingToSpillAt) return;
    // Spills fail (disk full): one is tried again now and then, not all of them at every look.
    const blocked = this.spillBlocked !== null;
    if (blocked && this.now - this.spillTriedAt < SPILL_RETRY_MS) return;
    if (blocked) this.spillTriedAt = this.now;
    const entries: [string, Uint8Array][] = [];
    // Slots in the order they were made: the oldest results first.
    for (const [key, slot] of this.slots) {
      if (this.storedBytes <= target || (blocked && entries.length > 0)) break;
      const d = slot.data;
      if (!d || !d.owned || d.refs > 0 || d.bytes.length === 0) continue;
      entries.push([key, d.bytes]);
      this.spilled.set(key, d.bytes.length);
      this.spilledBytes += d.bytes.length;
      this.deleteData(key, slot);
    }
    // Process memory over `spill` with nothing left to spill: only time (garbage collection) helps.
    if (entries.length > 0) this.out.push({ type: 'spill', entries });
    else this.nothingToSpillAt = this.storedBytes;
  }

  private reportFinished(key: string, run: number, nbytes: number, duration: number): void {
    const f = this.finished;
    f.keys.push(key);
    f.runs.push(run);
    f.nbytes.push(nbytes);
    f.durations.push(duration);
  }

  private store(key: string, bytes: Uint8Array, owned: boolean): DataEntry {
    return this.storeIn(this.slots.get(key) ?? this.addSlot(key), bytes, owned);
  }

  private addSlot(key: string): Slot {
    const slot: Slot = { task: null, data: null };
    this.slots.set(key, slot);
    return slot;
  }

  private storeIn(slot: Slot, bytes: Uint8Array, owned: boolean): DataEntry {
    const existing = slot.data;
    if (existing) {
      if (owned) this.setOwned(existing, true);
      return existing;
    }
    const entry: DataEntry = { bytes, owned, refs: 0 };
    slot.data = entry;
    this.stored++;
    this.storedBytes += bytes.length;
    if (!owned) this.borrowedBytes += bytes.length;
    return entry;
  }

  /** Whether a value is this worker's own (a result it keeps) or borrowed (an input, kept while tasks here use it). */
  private setOwned(d: DataEntry, owned: boolean): void {
    if (d.owned === owned) return;
    d.owned = owned;
    this.borrowedBytes += owned ? -d.bytes.length : d.bytes.length;
  }

  /** Drops a slot's data (and the slot, if no task is computing its key). */
  private deleteData(key: string, slot: Slot): void {
    const d = slot.data;
    if (!d) return;
    slot.data = null;
    this.stored--;
    this.storedBytes -= d.bytes.length;
    if (!d.owned) this.borrowedBytes -= d.bytes.length;
    if (!slot.task) this.slots.delete(key);
  }

  /** The task is no longer this worker's (its slot goes too, if it holds no data). */
  private clearTask(t: WTask): void {
    if (t.slot.task !== t) return;
    t.slot.task = null;
    if (!t.slot.data) this.slots.delete(t.key);
  }

  /** Sends the requests waiting for their peers, within the incoming limit (see INCOMING_SHARE). */
  private askPeers(): void {
    const limit = (this.config.memoryLimit ?? 0) > 0 ? (this.config.memoryLimit as number) * INCOMING_SHARE : Infinity;
    for (const [peer, batches] of this.toFetch) {
      while (batches.length > 0 && (this.incoming === 0 || this.incoming + this.borrowedBytes < limit)) {
        const b = batches.shift() as { keys: string[]; bytes: number };
        for (const key of b.keys) {
          const f = this.fetches.get(key);
          if (f && f.peer === peer && f.inFlight === 0) {
            // Of unknown size: counted as one byte, so that it is still known to be out.
            f.inFlight = Math.max(1, f.bytes);
            this.incoming += f.inFlight;
          }
        }
        this.out.push({ type: 'fetch', peer, keys: b.keys });
      }
      if (batches.length === 0) this.toFetch.delete(peer);
    }
  }

  /** A request for this value came back (with it or without): its bytes are no longer on their way. */
  private landed(f: Fetch): void {
    this.incoming -= f.inFlight;
    f.inFlight = 0;
  }

  private askNext(dep: string, f: Fetch): void {
    const peer = f.holders.shift();
    if (peer === undefined) {
      this.fetches.delete(dep);
      // A value handed on here counts as held here too: the scheduler must drop this worker as its holder.
      const holders = this.handedOn.delete(dep) ? [...f.tried, this.config.address] : f.tried;
      if (f.acquire) this.out.push({ type: 'send', msg: { op: 'acquired', keys: [], nbytes: new Float64Array(0), missing: [dep] } });
      for (const t of f.waiters) {
        if (t.slot.task !== t) continue;
        this.out.push({ type: 'send', msg: { op: 'missing', key: t.key, run: t.run, dep, holders } });
        this.dropTask(t);
      }
      return;
    }
    f.peer = peer;
    f.tried.push(peer);
    // Large values go a few per request, so that the first arrive (and their tasks start) while the rest stream in.
    const batches = this.toFetch.get(peer);
    const last = batches?.[batches.length - 1];
    if (last && last.bytes + f.bytes <= FETCH_BATCH_BYTES) {
      last.keys.push(dep);
      last.bytes += f.bytes;
    } else if (batches) batches.push({ keys: [dep], bytes: f.bytes });
    else this.toFetch.set(peer, [{ keys: [dep], bytes: f.bytes }]);
  }

  private fetchFailedKey(key: string, f: Fetch): void {
    this.landed(f);
    f.peer = null;
    this.askNext(key, f);
  }

  /** Every change of a task's state goes through here (see TASK_TRANSITIONS). */
  private setTaskState(t: WTask, next: WTaskState): void {
    if (!TASK_TRANSITIONS[t.state].includes(next) && this.illegal.length < 10) this.illegal.push(`task ${t.key}: ${t.state} -> ${next}`);
    t.state = next;
  }

  private makeReady(t: WTask): void {
    this.setTaskState(t, 'ready');
    this.ready.push(t);
  }

  /** Removes a task that has not started; gives back its inputs. */
  private dropTask(t: WTask): void {
    this.clearTask(t);
    if (t.state === 'fetching') {
      // Only the dependencies already local hold a ref for it.
      for (const dep of t.deps) {
        const f = this.fetches.get(dep);
        if (f && f.waiters.includes(t)) continue;
        const local = this.localWaiters.get(dep);
        if (local && local.includes(t)) {
          const rest = local.filter((x) => x !== t);
          if (rest.length > 0) this.localWaiters.set(dep, rest);
          else this.localWaiters.delete(dep);
          continue;
        }
        this.unref(dep);
      }
    } else {
      this.releaseInputs(t);
    }
    if (t.state === 'blocked') this.blocked = this.blocked.filter((b) => b !== t);
    // A 'ready' entry stays in the heap and is skipped when popped.
    this.setTaskState(t, 'dropped');
  }

  private releaseInputs(t: WTask): void {
    for (const dep of t.deps) this.unref(dep);
  }

  private unref(dep: string): void {
    const slot = this.slots.get(dep);
    const d = slot?.data;
    if (!slot || !d) return;
    d.refs = Math.max(0, d.refs - 1);
    if (d.refs === 0 && !d.owned) this.deleteData(dep, slot);
  }

  private releaseResources(t: WTask): void {
    if (!t.resources) return;
    for (const r in t.resources) this.freeResources[r] = (this.freeResources[r] ?? 0) + (t.resources[r] as number);
    if (this.blocked.length > 0) {
      for (const b of this.blocked) this.ready.push(b);
      this.blocked = [];
    }
  }

  private takeResources(t: WTask): boolean {
    if (!t.resources) return true;
    for (const r in t.resources) if ((this.freeResources[r] ?? 0) < (t.resources[r] as number)) return false;
    for (const r in t.resources) this.freeResources[r] = (this.freeResources[r] ?? 0) - (t.resources[r] as number);
    return true;
  }

  /**
   * A large input borrowed for one task (from a peer, the scheduler never
   * sends anyone here for it) can go to that task's thread whole: moved, not
   * copied. Only a buffer of its own can be moved.
   */
  private giveable(d: DataEntry): boolean {
    return !d.owned && d.refs === 1 && d.bytes.length >= GIVE_BYTES && d.bytes.byteOffset === 0 && d.bytes.byteLength === d.bytes.buffer.byteLength;
  }

  /** Tasks waiting here for `key`'s result; the map is empty for most graphs, so skip the lookup then. */
  private localWaitersOf(key: string): WTask[] | undefined {
    return this.localWaiters.size > 0 ? this.localWaiters.get(key) : undefined;
  }

  /**
   * A task's local dependents that miss nothing else: they can follow it onto
   * its thread now and take its result there in memory.
   */
  private earlyDependents(p: WTask): readonly WTask[] {
    const waiters = this.localWaitersOf(p.key);
    if (!waiters) return NO_TASKS;
    return waiters.filter((d) => d.slot.task === d && d.state === 'fetching' && d.missing === 1 && !d.resources);
  }

  /** Hands ready tasks to the executor, highest priority first, within limits. */
  private dispatch(): void {
    // Paused (memory past MEMORY.pause): no task starts until it is back under.
    if (this.paused) return;
    const limit = this.maxExecuting;
    while (this.executing - this.chained < limit && this.ready.size > 0) {
      const t = this.ready.pop() as WTask;
      if (t.state !== 'ready' && t.state !== 'blocked') continue;
      // A task not known to be short waits here for a free thread, not in a thread's queue: it would start no sooner there, and here the scheduler may still move it to an idle worker (work stealing).
      const fd = this.fnDuration[t.fn];
      if ((fd === undefined || fd >= STEALABLE_SECONDS) && this.executing - this.chained >= this.config.nthreads) {
        this.ready.push(t);
        break;
      }
      if (!this.takeResources(t)) {
        this.setTaskState(t, 'blocked');
        this.blocked.push(t);
        continue;
      }
      this.dispatchChain(t);
    }
  }

  /**
   * Dispatches a task and, right behind it on the same thread, the chain of
   * local dependents waiting only for it (and theirs, and so on). A chain
   * counts once against the executing limit: its tasks cannot run anywhere
   * sooner, and queueing them now lets each take its input in memory.
   */
  private dispatchChain(head: WTask): void {
    // Most tasks have no local dependents waiting: no stack for them.
    let stack: WTask[] | null = null;
    for (let t: WTask | undefined = head; t !== undefined; t = stack?.pop()) {
      if (t !== head) {
        t.chained = true;
        this.chained++;
      }
      this.setTaskState(t, 'executing');
      this.executing++;
      const depData: Uint8Array[] = t.deps.length === 0 ? NO_DATA : new Array(t.deps.length);
      let after: string | null = null;
      let give: number[] | null = null;
      let share: number[] | null = null;
      for (let i = 0; i < t.deps.length; i++) {
        const dep = t.deps[i] as string;
        const entry = this.slots.get(dep)?.data;
        if (entry) {
          depData[i] = entry.bytes;
          if (entry.refs > 1) (share ??= []).push(i);
        } else {
          after = dep;
          depData[i] = EMPTY;
        }
      }
      // Not for a task taking an input in memory: it may come back (requeued) and need its inputs again.
      if (after === null) {
        for (let i = 0; i < t.deps.length; i++) {
          const dep = t.deps[i] as string;
          const slot = this.slots.get(dep);
          if (slot?.data && this.giveable(slot.data)) {
            (give ??= []).push(i);
            // Still this worker's memory, in its thread, until the task ends.
            t.givenBytes += slot.data.bytes.length;
            this.borrowedBytes += slot.data.bytes.length;
            this.deleteData(dep, slot);
          }
        }
      }
      t.give = give;
      t.share = share;
      t.after = after;
      t.depData = depData;
      this.toExecute.push(t);
      const next = this.earlyDependents(t);
      t.keep = next.length > 0;
      if (next.length > 0) {
        stack ??= [];
        for (let i = next.length - 1; i >= 0; i--) stack.push(next[i] as WTask);
      }
      // Tell the scheduler which tasks to blame if this process dies. Functions
      // measured as fast are left out: the scheduler then blames all it sent.
      const fd = this.fnDuration[t.fn];
      if (fd === undefined || fd >= SLOW_SECONDS) {
        this.started.keys.push(t.key);
        this.started.runs.push(t.run);
      }
    }
  }
}
