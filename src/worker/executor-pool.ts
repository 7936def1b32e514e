/**
 * A fixed pool of executor threads. Each batch of tasks is spread over the
 * threads with the fewest tasks in hand; inputs (specs and dependency bytes)
 * are copied once into one buffer per thread batch and transferred. A thread
 * that dies (a task called process.exit, ran out of heap, or was ended as a
 * runaway) is replaced: the task it was running fails with the reason, the
 * others posted to it are requeued.
 */
import type { SerializedError } from '../errors.ts';
import { Worker } from 'node:worker_threads';
import type { FnDef } from '../protocol/messages.ts';
import type { ExecResult, ExecTask } from './state-machine.ts';
import { Fifo } from '../util/fifo.ts';
import { RESULT_ERROR, RESULT_HANDED_ON, RESULT_REQUEUE, type FromThread, type ResultBatch, type ThreadBatch, type ThreadEvents, type ThreadScheduler } from './thread-protocol.ts';
import { WEFT_ROOT } from '../util/self.ts';


const NO_KEYS: string[] = [];
/** Inputs this large that other tasks take too are kept by the thread that reads them (see post)... */
const SHARE_BYTES = 4096;
/** ...up to this much in all the threads of a worker (at least 4 MiB each): memory the worker's limit does not see. */
const INPUTS_BYTES = 32 * 1024 * 1024;

/** Placeholder for answered tasks in a thread's list, so they can be collected. */
const NO_DATA: Uint8Array[] = [];

interface Thread {
  worker: Worker;
  index: number;
  /** Number for the next task posted. */
  nextSeq: number;
  /** Tasks posted and not answered, in order. */
  posted: Fifo<ExecTask>;
  /** The number of the task it runs now, -1 for none (shared memory the thread writes). */
  running: Int32Array;
  /** The number of a task cancelled while it ran (-1: none): until it stops, the thread is stuck. */
  cancelledRunning: number;
  /** Tasks that seceded (out of `posted`: their results come on their own), by number. */
  seceded: Map<number, ExecTask>;
  /**
   * Inputs the thread keeps a copy of (see post), least recently used
   * first: the bytes they were copied from (gone, or replaced: the copy is
   * stale), and their total size.
   */
  inputs: Map<string, { from: WeakRef<Uint8Array>; size: number }>;
  inputBytes: number;
}

export interface PoolOptions {
  /** Heap limit of each executor thread, MB (Worker resourceLimits; 0: V8's default). */
  threadHeapLimitMb?: number;
  /** What a thread has to say for the worker's log (once, however many threads say it). */
  onNote?: (note: string) => void;
  /** Where tasks' own clients connect (TaskContext.client). */
  scheduler?: ThreadScheduler;
  /** A running task gave its thread slot back (seceded), or took it again. */
  onSecede?: (task: ExecTask, seceded: boolean) => void;
}

/** A result a running task put early (TaskContext.earlyResult). */
export interface EarlyPut {
  task: ExecTask;
  key: string;
  bytes: Uint8Array;
}

/** Where a task whose value a later task takes in memory is running. */
interface Keeper {
  th: Thread;
  seq: number;
}

/** The number of the oldest task posted to `th` and not answered. */
function firstPosted(th: Thread): number {
  return th.nextSeq - th.posted.size;
}

/** The task numbered `seq` on `th`, if it is posted there and not answered. */
function posted(th: Thread, seq: number): ExecTask | undefined {
  return th.posted.at(seq - firstPosted(th));
}

export class ExecutorPool {
  private threads: Thread[] = [];
  private closed = false;
  /** Every function defined so far, for threads started later. */
  private fns: [number, FnDef][] = [];
  /** Tasks running now whose value a later task takes in memory, by key. */
  private keepers = new Map<string, Keeper>();
  /** Actors kept on the threads (worker/actors.ts): by id, and the id by the key of the task that made it. */
  private readonly actorThreads = new Map<string, Thread>();
  private readonly actorOfKey = new Map<string, string>();
  private readonly actorCalls = new Map<number, { th: Thread; resolve: (r: { bytes?: Uint8Array; error?: SerializedError }) => void }>();
  private nextCall = 0;
  /** Notes logged lately: every thread that reloads a module says so, the log once. */
  private readonly notes = new Set<string>();

  constructor(
    readonly size: number,
    private readonly cwd: string,
    private readonly onResultsCb: (results: ExecResult[]) => void,
    private readonly onEvents: (events: ThreadEvents, early: EarlyPut[]) => void,
    private readonly onThreadDeath: (index: number, reason: string) => void = () => {},
    private readonly options: PoolOptions = {},
  ) {
    for (let i = 0; i < size; i++) this.threads.push(this.spawn(i));
  }

  /** Resolves once every thread has started (module loading done). */
  async ready(): Promise<void> {
    await Promise.all(this.threads.map((t) => new Promise<void>((resolve) => {
      t.worker.once('online', () => resolve());
    })));
  }

  /** Defines functions on every thread (before any task that uses them). */
  define(ids: number[], defs: FnDef[]): void {
    const entries = ids.map((id, i) => [id, defs[i] as FnDef] as [number, FnDef]);
    this.fns.push(...entries);
    for (const th of this.threads) th.worker.postMessage({ fns: entries });
  }

  /** Drops functions no task will call (the scheduler forgot them), here and on every thread. */
  forget(ids: number[]): void {
    const gone = new Set(ids);
    this.fns = this.fns.filter(([id]) => !gone.has(id));
    for (const th of this.threads) th.worker.postMessage({ forgetFns: ids });
  }

  execute(tasks: ExecTask[]): void {
    if (this.closed) return;
    const per = new Map<Thread, { list: ExecTask[]; afters: number[] }>();
    for (const t of tasks) {
      let th: Thread | undefined;
      let producer = -1;
      let afterDep = -1;
      if (t.after !== null) {
        // It takes an input in memory from the thread computing it, so it must run there.
        const k = this.keepers.get(t.after);
        if (k) {
          th = k.th;
          producer = k.seq;
        }
        afterDep = t.deps.indexOf(t.after);
      }
      if (!th) {
        th = this.threads[0] as Thread;
        for (const x of this.threads) if (this.load(x, per) < this.load(th, per)) th = x;
        // A thread that keeps one of its inputs, unless it is busier.
        if (t.share !== null && this.threads.length > 1) {
          for (const x of this.threads) if (x !== th && this.load(x, per) <= this.load(th, per) + 1 && t.deps.some((d) => x.inputs.has(d))) th = x;
        }
      }
      let batch = per.get(th);
      if (!batch) {
        batch = { list: [], afters: [] };
        per.set(th, batch);
      }
      if (afterDep >= 0) batch.afters.push(batch.list.length, producer, afterDep);
      const seq = th.nextSeq + batch.list.length;
      batch.list.push(t);
      if (t.keep) this.keepers.set(t.key, { th, seq });
    }
    for (const [th, batch] of per) this.post(th, batch.list, batch.afters);
  }

  /** Asks every thread to drop the inputs it keeps and collect its garbage now (where the process runs with --expose-gc). */
  collectGarbage(): void {
    for (const th of this.threads) {
      // The inputs it keeps for tasks to come go too (under memory pressure, a copy each costs less): in a batch of no tasks, so in order with the batches before.
      if (th.inputs.size > 0) {
        const drop: string[] = [];
        for (const [key, e] of th.inputs) this.dropInput(th, key, e.size, drop);
        this.post(th, [], [], drop);
      }
      th.worker.postMessage({ gc: true });
    }
  }

  /** Cancels tasks posted to threads: a running one sees its signal abort, a queued one does not start. */
  cancel(keys: readonly string[]): void {
    const wanted = new Set(keys);
    for (const th of this.threads) {
      const t = this.runningTask(th);
      if (t && wanted.has(t.key)) th.cancelledRunning = th.running[0] as number;
      const seqs: number[] = [];
      let seq = firstPosted(th);
      th.posted.forEach((t) => {
        if (wanted.has(t.key)) seqs.push(seq);
        seq++;
      });
      for (const [seq, t] of th.seceded) if (wanted.has(t.key)) seqs.push(seq);
      if (seqs.length > 0) th.worker.postMessage({ cancel: seqs });
    }
  }

  private load(th: Thread, per: Map<Thread, { list: ExecTask[] }>): number {
    return th.posted.size + (per.get(th)?.list.length ?? 0);
  }

  /**
   * Ends every thread, whatever it runs (a task that never returns
   * included), and starts fresh ones: nothing they held or imported is kept.
   * Results and events of the old threads are ignored.
   */
  restart(): void {
    if (this.closed) return;
    const old = this.threads;
    this.threads = old.map((_, i) => this.spawn(i));
    this.keepers.clear();
    for (const th of old) void th.worker.terminate();
  }

  /**
   * Ends the threads running any of `keys` (tasks cancelled that ignored
   * their signal past the grace period), like a thread that died: the task
   * fails with `reason`, the others posted there are requeued.
   */
  endRunaways(keys: ReadonlySet<string>, reason: string): void {
    for (const th of [...this.threads]) {
      const t = this.runningTask(th);
      if (t && keys.has(t.key)) this.replace(th, reason);
    }
  }

  /** Threads still running a task cancelled while it ran (its signal not yet heeded; ended after the grace period). */
  get stuck(): number {
    let n = 0;
    for (const th of this.threads) if (th.cancelledRunning >= 0 && th.running[0] === th.cancelledRunning) n++;
    return n;
  }

  /**
   * A task seceded (it is first in `posted`: the thread posted the results
   * before it first), rejoined, or ended after seceding.
   */
  private onSeceded(th: Thread, msg: FromThread): void {
    if (msg.seceded !== undefined && firstPosted(th) === msg.seceded) {
      const t = th.posted.shift() as ExecTask;
      th.seceded.set(msg.seceded, t);
      this.options.onSecede?.(t, true);
    }
    if (msg.rejoined !== undefined) {
      const t = th.seceded.get(msg.rejoined);
      if (t) this.options.onSecede?.(t, false);
    }
    const late = msg.late;
    if (!late) return;
    const t = th.seceded.get(late.seq);
    if (!t) return;
    th.seceded.delete(late.seq);
    if (t.keep && this.keepers.get(t.key)?.th === th) this.keepers.delete(t.key);
    const r: ExecResult = late.error ? { key: t.key, run: t.run, task: t, error: late.error, duration: late.duration } : { key: t.key, run: t.run, task: t, bytes: late.bytes ?? new Uint8Array(0), duration: late.duration };
    this.onResultsCb([r]);
  }

  /** Task `seq` of thread `th` made actor `actorId`: calls on it go to that thread. */
  private actorHere(th: Thread, actorId: string, seq: number): void {
    this.actorThreads.set(actorId, th);
    const t = posted(th, seq) ?? th.seceded.get(seq);
    if (t) this.actorOfKey.set(t.key, actorId);
  }

  /** Calls a method of an actor kept here: its value (msgpack) or error; an error at once if it is not here. */
  actorCall(actorId: string, method: string, args: Uint8Array): Promise<{ bytes?: Uint8Array; error?: SerializedError }> {
    const th = this.actorThreads.get(actorId);
    if (!th || this.threads[th.index] !== th) return Promise.resolve({ error: { name: 'ActorLostError', message: `actor ${actorId} is not on this worker (its thread was replaced, or it was released)` } });
    const callId = ++this.nextCall;
    return new Promise((resolve) => {
      this.actorCalls.set(callId, { th, resolve });
      th.worker.postMessage({ actorCall: { callId, actorId, method, args } });
    });
  }

  /** Results freed here: actors made by those tasks go with them. */
  dropActors(keys: readonly string[]): void {
    if (this.actorOfKey.size === 0) return;
    for (const k of keys) {
      const id = this.actorOfKey.get(k);
      if (id === undefined) continue;
      this.actorOfKey.delete(k);
      const th = this.actorThreads.get(id);
      this.actorThreads.delete(id);
      th?.worker.postMessage({ dropActor: id });
    }
  }

  /** Results put early on thread `th`, with the tasks that put them (still posted: their results come after). */
  private earlyPuts(th: Thread, e: NonNullable<ThreadEvents['early']>): EarlyPut[] {
    const out: EarlyPut[] = [];
    for (let i = 0; i < e.keys.length; i++) {
      const task = posted(th, e.seqs[i] as number);
      if (task) out.push({ task, key: e.keys[i] as string, bytes: e.data[i] as Uint8Array });
    }
    return out;
  }

  /** The task thread `th` runs now, if any. */
  private runningTask(th: Thread): ExecTask | null {
    const seq = th.running[0] as number;
    return seq < 0 ? null : (posted(th, seq) ?? null);
  }

  /**
   * A new thread in place of `th`, which is ended if it still runs. Its
   * running task fails with `reason`; every other task posted to it (queued,
   * or done and not yet reported) is requeued.
   */
  private replace(th: Thread, reason: string): void {
    const running = this.runningTask(th);
    const results: ExecResult[] = th.posted.drain().map((t) =>
      t === running
        ? { key: t.key, run: t.run, task: t, error: { name: 'ExecutorCrashError', message: `task ${t.key} ${reason}` }, duration: 0 }
        : { key: t.key, run: t.run, task: t, duration: 0, requeue: true },
    );
    // Seceded tasks were running there too: any of them may be the one that ended it.
    for (const t of th.seceded.values()) results.push({ key: t.key, run: t.run, task: t, error: { name: 'ExecutorCrashError', message: `task ${t.key} was waiting on its thread (seceded) when the thread ${reason}` }, duration: 0 });
    th.seceded.clear();
    for (const [key, k] of this.keepers) if (k.th === th) this.keepers.delete(key);
    // Its actors are gone with it; calls waiting on them get an error.
    for (const [id, t] of this.actorThreads) if (t === th) this.actorThreads.delete(id);
    for (const [callId, c] of this.actorCalls) {
      if (c.th !== th) continue;
      this.actorCalls.delete(callId);
      c.resolve({ error: { name: 'ActorLostError', message: `the actor's thread ${reason}` } });
    }
    this.threads[th.index] = this.spawn(th.index);
    void th.worker.terminate();
    this.onThreadDeath(th.index, reason);
    if (results.length > 0) this.onResultsCb(results);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
    this.threads = [];
  }

  /**
   * Posts tasks column by column; arguments and inputs go in one transferred
   * buffer.
   *
   * An input of at least SHARE_BYTES that other tasks here take too (the 64
   * picks from one partition of a shuffle) is kept by the thread, once
   * copied to it: the tasks after take it from there instead of a copy each
   * (1 MiB copied per pick into fresh memory was most of a shuffle's time).
   * Each task still decodes its own value of it, so a task that changes its
   * input in place changes no other's. What a thread keeps is bounded by
   * INPUTS_BYTES shared by the threads, least recently used out first;
   * `drop` lists kept inputs already let go of (the thread drops them first).
   */
  private post(th: Thread, tasks: ExecTask[], afters: number[], drop: string[] = []): void {
    let total = 0;
    let ndeps = 0;
    // Inputs the thread keeps for later tasks, by index in depKeys: each goes in a buffer of its own, which the thread keeps without a copy.
    let keep: Set<number> | null = null;
    const kept: [number, ArrayBuffer][] = [];
    const cached: number[] = [];
    // Read from the thread's copy, by index in depKeys; and the keys read from or kept there in this batch.
    let fromCache: Set<number> | null = null;
    let usedNow: Set<string> | null = null;
    const budget = Math.max(4 * 1024 * 1024, INPUTS_BYTES / this.threads.length);
    let dk = 0;
    for (const t of tasks) {
      total += t.args.length;
      for (let j = 0; j < t.depData.length; j++, dk++) {
        if (t.give?.includes(j)) continue;
        const d = t.depData[j] as Uint8Array;
        if (d.length >= SHARE_BYTES && (th.inputs.size > 0 || t.share !== null)) {
          const key = t.deps[j] as string;
          const got = th.inputs.get(key);
          if (got && got.from.deref() === d) {
            // Used now: last out.
            th.inputs.delete(key);
            th.inputs.set(key, got);
            cached.push(dk);
            (fromCache ??= new Set()).add(dk);
            (usedNow ??= new Set()).add(key);
            continue;
          }
          if (got) this.dropInput(th, key, got.size, drop);
          if (t.share?.includes(j) && d.length <= budget / 4) {
            th.inputs.set(key, { from: new WeakRef(d), size: d.length });
            th.inputBytes += d.length;
            (keep ??= new Set()).add(dk);
            (usedNow ??= new Set()).add(key);
            continue;
          }
        }
        total += d.length;
      }
      ndeps += t.deps.length;
    }
    // Over the bound: least recently used out (not one this batch keeps or reads there).
    for (const [key, e] of th.inputs) {
      if (th.inputBytes <= budget) break;
      if (!usedNow?.has(key)) this.dropInput(th, key, e.size, drop);
    }
    const chunk = new ArrayBuffer(total);
    const view = new Uint8Array(chunk);
    const n = tasks.length;
    const given: [number, ArrayBuffer][] = [];
    const ephemeral: number[] = [];
    const batch: ThreadBatch = { base: th.nextSeq, fns: new Int32Array(n), depCounts: new Int32Array(n), ends: new Uint32Array(n + ndeps), afters, depKeys: ndeps === 0 ? NO_KEYS : new Array<string>(ndeps), chunk, given, ephemeral, drop, keep: kept, cached };
    th.nextSeq += n;
    let off = 0;
    let e = 0;
    dk = 0;
    for (let i = 0; i < n; i++) {
      const t = tasks[i] as ExecTask;
      th.posted.push(t);
      if (t.ephemeral && t.keep) ephemeral.push(i);
      batch.fns[i] = t.fn;
      batch.depCounts[i] = t.deps.length;
      view.set(t.args, off);
      off += t.args.length;
      batch.ends[e++] = off;
      for (let j = 0; j < t.deps.length; j++) {
        const d = t.depData[j] as Uint8Array;
        // Given (the worker's only copy, used by this task alone): the thread takes the buffer itself.
        if (t.give?.includes(j)) given.push([dk, d.buffer as ArrayBuffer]);
        else if (keep?.has(dk) === true) {
          // Not zero-filled: every byte is written.
          const own = Buffer.allocUnsafeSlow(d.length);
          own.set(d);
          kept.push([dk, own.buffer as ArrayBuffer]);
        } else if (fromCache?.has(dk) !== true) {
          view.set(d, off);
          off += d.length;
        }
        batch.ends[e++] = off;
        batch.depKeys[dk++] = t.deps[j] as string;
      }
      if (t.depData.length > 0) t.depData = NO_DATA; // copied: the inputs need not stay alive for it
    }
    th.worker.postMessage({ tasks: batch }, given.length === 0 && kept.length === 0 ? [chunk] : [chunk, ...given.map(([, b]) => b), ...kept.map(([, b]) => b)]);
  }

  private dropInput(th: Thread, key: string, size: number, drop: string[]): void {
    th.inputs.delete(key);
    th.inputBytes -= size;
    drop.push(key);
  }

  /** Results for the oldest tasks posted to `th`, in order. */
  private onResults(th: Thread, r: ResultBatch): void {
    const view = new Uint8Array(r.chunk);
    const errors = r.errors.length > 0 ? new Map(r.errors) : null;
    const large = r.large.length > 0 ? new Map(r.large) : null;
    const handedOn = r.handedOn.length > 0 ? new Map(r.handedOn) : null;
    const n = r.status.length;
    const results: ExecResult[] = new Array(n);
    let start = 0;
    for (let i = 0; i < n; i++) {
      const t = th.posted.shift() as ExecTask;
      if (t.keep && this.keepers.get(t.key)?.th === th) this.keepers.delete(t.key);
      const end = r.ends[i] as number;
      const status = r.status[i];
      const duration = r.durations[i] as number;
      if (status === RESULT_REQUEUE) results[i] = { key: t.key, run: t.run, task: t, duration, requeue: true };
      else if (status === RESULT_HANDED_ON) results[i] = { key: t.key, run: t.run, task: t, duration, handedOn: handedOn?.get(i) ?? 0 };
      else if (status === RESULT_ERROR) results[i] = { key: t.key, run: t.run, task: t, error: errors?.get(i) ?? { name: 'Error', message: 'task failed' }, duration };
      else {
        const own = large?.get(i);
        results[i] = { key: t.key, run: t.run, task: t, bytes: own ? new Uint8Array(own) : view.subarray(start, end), duration };
      }
      start = end;
    }
    this.onResultsCb(results);
  }

  private note(text: string): void {
    if (this.notes.has(text)) return;
    if (this.notes.size >= 64) this.notes.clear();
    this.notes.add(text);
    this.options.onNote?.(text);
  }

  private spawn(index: number): Thread {
    const running = new Int32Array(new SharedArrayBuffer(4)).fill(-1);
    const heap = this.options.threadHeapLimitMb ?? 0;
    const worker = new Worker(new URL('util/thread-entry.mjs', WEFT_ROOT), { workerData: { entry: 'worker/executor-thread', cwd: this.cwd, running, scheduler: this.options.scheduler }, ...(heap > 0 ? { resourceLimits: { maxOldGenerationSizeMb: heap } } : {}) });
    const th: Thread = { worker, index, nextSeq: 0, posted: new Fifo(), running, cancelledRunning: -1, seceded: new Map(), inputs: new Map(), inputBytes: 0 };
    if (this.fns.length > 0) worker.postMessage({ fns: this.fns });
    worker.on('message', (msg: FromThread) => {
      // A thread replaced (restart) says nothing more.
      if (this.threads[index] !== th) return;
      // Events first: they must reach the scheduler ahead of the results of the tasks that sent them.
      if (msg.note !== undefined) this.note(msg.note);
      if (msg.events) this.onEvents(msg.events, msg.events.early ? this.earlyPuts(th, msg.events.early) : []);
      if (msg.results) this.onResults(th, msg.results);
      if (msg.seceded !== undefined || msg.rejoined !== undefined || msg.late) this.onSeceded(th, msg);
      if (msg.actorHere) this.actorHere(th, msg.actorHere.actorId, msg.actorHere.seq);
      if (msg.actorReply) {
        const done = this.actorCalls.get(msg.actorReply.callId);
        this.actorCalls.delete(msg.actorReply.callId);
        done?.resolve(msg.actorReply);
      }
    });
    const died = (reason: string): void => {
      if (this.closed || this.threads[index] !== th) return;
      this.replace(th, reason);
    };
    worker.on('error', (err: Error & { code?: string }) =>
      died(err.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `ran out of memory (the thread's heap limit is ${heap > 0 ? `${heap} MB, --thread-heap-limit` : "V8's default"})` : `${err.name}: ${err.message}`),
    );
    worker.on('exit', (code) => died(`ended its thread with exit code ${code} (process.exit in a task ends its thread)`));
    return th;
  }
}
