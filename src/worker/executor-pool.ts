/**
 * A fixed pool of executor threads. Each batch of tasks is spread over the
 * threads with the fewest tasks in hand; inputs (specs and dependency bytes)
 * are copied once into one buffer per thread batch and transferred. A thread
 * that dies fails its tasks with the reason and is replaced.
 */
import { Worker } from 'node:worker_threads';
import type { SerializedError } from '../errors.ts';
import type { FnDef } from '../protocol/messages.ts';
import type { ExecResult, ExecTask } from './state-machine.ts';

/**
 * Tasks for a thread, column by column: task i has keys[i], runs[i], fns[i];
 * `chunk` holds, per task, its arguments then its depCounts[i] inputs, each
 * ending at the next entry of `ends`; depKeys names the inputs in order.
 */
export interface ThreadBatch {
  /** [task index, key of its input that this thread computes itself (sent empty)]. */
  afters: [number, string][];
  keys: string[];
  runs: number[];
  fns: number[];
  depCounts: number[];
  depKeys: string[];
  ends: number[];
  chunk: ArrayBuffer;
}

/** Results from a thread: bytes of result i end at ends[i] in `chunk`; failed tasks are in `errors`. */
export interface ResultBatch {
  /** Indices of tasks returned for a normal dispatch (their `after` input was not here). */
  requeue: number[];
  keys: string[];
  runs: number[];
  durations: number[];
  ends: number[];
  errors: [number, SerializedError][];
  chunk: ArrayBuffer;
}

interface Thread {
  worker: Worker;
  inflight: Map<string, number>;
  index: number;
}

export class ExecutorPool {
  private threads: Thread[] = [];
  private closed = false;
  /** Every function defined so far, for threads started later. */
  private fns: [number, FnDef][] = [];

  constructor(
    readonly size: number,
    private readonly cwd: string,
    private readonly onResults: (results: ExecResult[]) => void,
    private readonly onThreadDeath: (index: number, reason: string) => void = () => {},
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

  execute(tasks: ExecTask[]): void {
    if (this.closed) return;
    if (this.threads.length === 1) {
      this.post(this.threads[0] as Thread, tasks);
      return;
    }
    const per = new Map<Thread, ExecTask[]>();
    for (const t of tasks) {
      // A task that runs after an input computed on one thread must go to that thread.
      const home = t.after === null ? undefined : this.threads.find((th) => th.inflight.has(t.after as string) || per.get(th)?.some((x) => x.key === t.after));
      if (home) {
        const list = per.get(home);
        if (list) list.push(t);
        else per.set(home, [t]);
        continue;
      }
      let best = this.threads[0] as Thread;
      for (const th of this.threads) {
        const load = th.inflight.size + (per.get(th)?.length ?? 0);
        if (load < best.inflight.size + (per.get(best)?.length ?? 0)) best = th;
      }
      const list = per.get(best);
      if (list) list.push(t);
      else per.set(best, [t]);
    }
    for (const [th, list] of per) this.post(th, list);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
    this.threads = [];
  }

  /** Posts tasks column by column; specs and inputs go in one transferred buffer. */
  private post(th: Thread, tasks: ExecTask[]): void {
    let total = 0;
    let ndeps = 0;
    for (const t of tasks) {
      total += t.args.length;
      for (const d of t.depData) total += d.length;
      ndeps += t.depKeys.length;
    }
    const chunk = new ArrayBuffer(total);
    const view = new Uint8Array(chunk);
    const n = tasks.length;
    const batch: ThreadBatch = { afters: [], keys: new Array(n), runs: new Array(n), fns: new Array(n), ends: new Array(n + ndeps), depCounts: new Array(n), depKeys: new Array(ndeps), chunk };
    let off = 0;
    let e = 0;
    let dk = 0;
    for (let i = 0; i < n; i++) {
      const t = tasks[i] as ExecTask;
      th.inflight.set(t.key, t.run);
      batch.keys[i] = t.key;
      batch.runs[i] = t.run;
      batch.fns[i] = t.fn;
      batch.depCounts[i] = t.depKeys.length;
      if (t.after !== null) batch.afters.push([i, t.after]);
      view.set(t.args, off);
      off += t.args.length;
      batch.ends[e++] = off;
      for (let j = 0; j < t.depKeys.length; j++) {
        const d = t.depData[j] as Uint8Array;
        view.set(d, off);
        off += d.length;
        batch.ends[e++] = off;
        batch.depKeys[dk++] = t.depKeys[j] as string;
      }
    }
    th.worker.postMessage({ tasks: batch }, [chunk]);
  }

  private spawn(index: number): Thread {
    const worker = new Worker(new URL('./thread-entry.mjs', import.meta.url), { workerData: { cwd: this.cwd } });
    const th: Thread = { worker, inflight: new Map(), index };
    if (this.fns.length > 0) worker.postMessage({ fns: this.fns });
    worker.on('message', (msg: { results: ResultBatch }) => {
      const r = msg.results;
      const view = new Uint8Array(r.chunk);
      const errors = r.errors.length > 0 ? new Map(r.errors) : null;
      const requeue = r.requeue.length > 0 ? new Set(r.requeue) : null;
      const results: ExecResult[] = new Array(r.keys.length);
      let start = 0;
      for (let i = 0; i < r.keys.length; i++) {
        const key = r.keys[i] as string;
        th.inflight.delete(key);
        const end = r.ends[i] as number;
        const error = errors?.get(i);
        const run = r.runs[i] as number;
        const duration = r.durations[i] as number;
        if (requeue?.has(i)) results[i] = { key, run, duration, requeue: true };
        else if (error) results[i] = { key, run, error, duration };
        else results[i] = { key, run, bytes: view.subarray(start, end), duration };
        start = end;
      }
      this.onResults(results);
    });
    const died = (reason: string): void => {
      if (this.closed || this.threads[index] !== th) return;
      const lost: ExecResult[] = [...th.inflight].map(([key, run]) => ({
        key,
        run,
        error: { name: 'ExecutorCrashError', message: `the executor thread running task ${key} died: ${reason}` },
        duration: 0,
      }));
      th.inflight.clear();
      this.threads[index] = this.spawn(index);
      this.onThreadDeath(index, reason);
      if (lost.length > 0) this.onResults(lost);
    };
    worker.on('error', (err) => died(`${err.name}: ${err.message}`));
    worker.on('exit', (code) => died(`exited with code ${code}`));
    return th;
  }
}
