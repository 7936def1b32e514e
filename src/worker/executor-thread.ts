/**
 * Runs tasks in a worker thread, so the worker's main thread stays free to
 * heartbeat and serve data however long a task computes. Receives batches of
 * tasks in columns (see ThreadBatch), runs them in order, and posts results
 * back in columns at least every 5 ms while busy (at once when idle), all result bytes in one
 * transferred buffer.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { decode, encode } from '../protocol/codec.ts';
import type { FnDef } from '../protocol/messages.ts';
import { substituteRefs } from '../protocol/spec.ts';
import { serializeError, type SerializedError } from '../errors.ts';
import { resolveFunction, type TaskFunction } from './functions.ts';
import type { ResultBatch, ThreadBatch } from './executor-pool.ts';
import type { ExecTask as Task } from './state-machine.ts';

// esbuild (behind tsx) wraps named inner functions in __name(); shipped sources need it here.
const g = globalThis as { __name?: (fn: unknown, name: string) => unknown };
g.__name ??= (fn: unknown, name: string) => {
  try {
    Object.defineProperty(fn, 'name', { value: name, configurable: true });
  } catch {
    // a frozen function keeps its name
  }
  return fn;
};

const port = parentPort;
if (!port) throw new Error('executor-thread must run in a worker thread');
const cwd = (workerData as { cwd: string }).cwd;
const FLUSH_MS = 5;

interface Result {
  key: string;
  run: number;
  bytes: Uint8Array | null;
  error: SerializedError | null;
  duration: number;
  requeue?: boolean;
}

/**
 * Chains kept on this thread: keys a queued task will take in memory (with
 * how many tasks want each), the values kept for them, and keys whose task
 * failed here.
 */
const wanted = new Map<string, number>();
const kept = new Map<string, { value: unknown; bytes: Uint8Array }>();
const failedHere = new Map<string, SerializedError>();

const fns = new Map<number, FnDef>();
const queue: ThreadBatch[] = [];
let running = false;
let results: Result[] = [];
let lastFlush = performance.now();

port.on('message', (msg: { tasks: ThreadBatch } | { fns: [number, FnDef][] }) => {
  if ('fns' in msg) {
    for (const [id, def] of msg.fns) fns.set(id, def);
    return;
  }
  for (const [, key] of msg.tasks.afters) wanted.set(key, (wanted.get(key) ?? 0) + 1);
  queue.push(msg.tasks);
  if (!running) void runQueue();
});

async function runQueue(): Promise<void> {
  running = true;
  while (queue.length > 0) {
    const b = queue.shift() as ThreadBatch;
    const view = new Uint8Array(b.chunk);
    const afters = b.afters.length > 0 ? new Map(b.afters) : null;
    let e = 0;
    let dk = 0;
    let start = 0;
    const slice = (): Uint8Array => {
      const end = b.ends[e++] as number;
      const v = view.subarray(start, end);
      start = end;
      return v;
    };
    for (let i = 0; i < b.keys.length; i++) {
      const args = slice();
      const n = b.depCounts[i] as number;
      const depKeys: string[] = new Array(n);
      const depData: Uint8Array[] = new Array(n);
      for (let j = 0; j < n; j++) {
        depKeys[j] = b.depKeys[dk++] as string;
        depData[j] = slice();
      }
      const r = runOne({ key: b.keys[i] as string, run: b.runs[i] as number, after: afters?.get(i) ?? null, fn: b.fns[i] as number, args, depKeys, depData });
      results.push(r instanceof Promise ? await r : r);
      const last = i === b.keys.length - 1 && queue.length === 0;
      if (last || performance.now() - lastFlush >= FLUSH_MS) flush();
    }
  }
  running = false;
}

function fail(t: Task, err: unknown, duration: number): Result {
  const error = serializeError(err);
  if (wanted.has(t.key)) failedHere.set(t.key, error);
  return { key: t.key, run: t.run, bytes: null, error, duration };
}

/** Takes the in-memory input of a task sent to run after it; undefined if this thread does not have it. */
function takeKept(key: string): { value: unknown } | { error: SerializedError } | undefined {
  const left = (wanted.get(key) ?? 1) - 1;
  if (left > 0) wanted.set(key, left);
  else wanted.delete(key);
  const error = failedHere.get(key);
  if (error) {
    if (left <= 0) failedHere.delete(key);
    return { error };
  }
  const k = kept.get(key);
  if (!k) return undefined;
  if (left > 0) return { value: decode(k.bytes) }; // others still want it: a private copy
  kept.delete(key);
  return { value: k.value };
}

function finish(t: Task, value: unknown, start: number): Result {
  const duration = (performance.now() - start) / 1000;
  if (typeof value === 'function' || typeof value === 'symbol') {
    return fail(t, new TypeError(`task ${t.key} returned a ${typeof value}, which cannot be sent to other machines`), duration);
  }
  try {
    const bytes = encode(value);
    if (wanted.has(t.key)) kept.set(t.key, { value, bytes });
    return { key: t.key, run: t.run, bytes, error: null, duration };
  } catch (err) {
    return fail(t, new TypeError(`the result of task ${t.key} cannot be serialized: ${(err as Error).message}`), duration);
  }
}

function runOne(t: Task): Result | Promise<Result> {
  const start = performance.now();
  const def = fns.get(t.fn);
  if (!def) return fail(t, new Error(`task ${t.key} uses function #${t.fn}, which was never defined on this worker`), 0);
  const [kind, ref] = def;
  let args: unknown[];
  try {
    const decoded = decode(t.args);
    if (!Array.isArray(decoded)) throw new TypeError(`the arguments of task ${t.key} are not an array`);
    args = decoded;
    if (t.depKeys.length > 0) {
      let local: unknown;
      if (t.after !== null) {
        const got = takeKept(t.after);
        if (!got) return { key: t.key, run: t.run, bytes: null, error: null, duration: 0, requeue: true };
        if ('error' in got) return { key: t.key, run: t.run, bytes: null, error: { name: 'DependencyError', message: `input ${t.after} failed: ${got.error.message}`, failedKey: t.after }, duration: 0 };
        local = got.value;
      }
      const values = t.depData.map((d, i) => (t.depKeys[i] === t.after ? local : decode(d)));
      const keys = t.depKeys;
      args = substituteRefs(args, (k) => values[keys.indexOf(k)]) as unknown[];
    }
  } catch (err) {
    return fail(t, err, 0);
  }
  const call = (fn: TaskFunction): Result | Promise<Result> => {
    let out: unknown;
    try {
      out = fn(...args);
    } catch (err) {
      return fail(t, err, (performance.now() - start) / 1000);
    }
    if (out instanceof Promise) {
      return out.then(
        (v: unknown) => finish(t, v, start),
        (err: unknown) => fail(t, err, (performance.now() - start) / 1000),
      );
    }
    return finish(t, out, start);
  };
  try {
    const fn = resolveFunction(kind, ref, cwd);
    return fn instanceof Promise ? fn.then(call, (err: unknown) => fail(t, err, 0)) : call(fn);
  } catch (err) {
    return fail(t, err, 0);
  }
}

/** Posts the results so far, in columns, their bytes in one transferred buffer. */
function flush(): void {
  lastFlush = performance.now();
  if (results.length === 0) return;
  let total = 0;
  for (const r of results) if (r.bytes) total += r.bytes.length;
  const chunk = new ArrayBuffer(total);
  const view = new Uint8Array(chunk);
  const n = results.length;
  const out: ResultBatch = { requeue: [], keys: new Array(n), runs: new Array(n), durations: new Array(n), ends: new Array(n), errors: [], chunk };
  let off = 0;
  for (let i = 0; i < n; i++) {
    const r = results[i] as Result;
    out.keys[i] = r.key;
    out.runs[i] = r.run;
    out.durations[i] = r.duration;
    if (r.requeue) {
      out.requeue.push(i);
    } else if (r.bytes) {
      view.set(r.bytes, off);
      off += r.bytes.length;
    } else if (r.error) {
      out.errors.push([i, r.error]);
    }
    out.ends[i] = off;
  }
  results = [];
  port?.postMessage({ results: out }, [chunk]);
}
