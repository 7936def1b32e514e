/**
 * A fixed pool of executor threads. Each batch of tasks is spread over the
 * threads with the fewest tasks in hand; inputs (specs and dependency bytes)
 * are copied once into one buffer per thread batch and transferred. A thread
 * that dies fails its tasks with the reason and is replaced.
 */
import { Worker } from 'node:worker_threads';
import type { FnDef } from '../protocol/messages.ts';
import type { ExecResult, ExecTask } from './state-machine.ts';

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

  private post(th: Thread, tasks: ExecTask[]): void {
    let total = 0;
    for (const t of tasks) {
      total += t.args.length;
      for (const d of t.depData) total += d.length;
    }
    const chunk = new ArrayBuffer(total);
    const view = new Uint8Array(chunk);
    let off = 0;
    const copy = (b: Uint8Array): Uint8Array => {
      view.set(b, off);
      const v = new Uint8Array(chunk, off, b.length);
      off += b.length;
      return v;
    };
    const out: ExecTask[] = new Array(tasks.length);
    for (let i = 0; i < tasks.length; i++) {
      const t = tasks[i] as ExecTask;
      th.inflight.set(t.key, t.run);
      out[i] = { key: t.key, run: t.run, fn: t.fn, args: copy(t.args), depKeys: t.depKeys, depData: t.depData.length === 0 ? t.depData : t.depData.map(copy) };
    }
    th.worker.postMessage({ tasks: out }, [chunk]);
  }

  private spawn(index: number): Thread {
    const worker = new Worker(new URL('./thread-entry.mjs', import.meta.url), { workerData: { cwd: this.cwd } });
    const th: Thread = { worker, inflight: new Map(), index };
    if (this.fns.length > 0) worker.postMessage({ fns: this.fns });
    worker.on('message', (msg: { results: ExecResult[] }) => {
      for (const r of msg.results) th.inflight.delete(r.key);
      this.onResults(msg.results);
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
