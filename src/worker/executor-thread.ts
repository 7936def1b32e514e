/**
 * Runs tasks in a worker thread, so the worker's main thread stays free to
 * heartbeat and serve data however long a task computes. Receives batches of
 * tasks, runs them in order, and posts results back in batches (at most every
 * 2 ms while busy), all results of a batch packed into one transferred buffer.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { decode, encode, encodeOwned } from '../protocol/codec.ts';
import type { FnDef } from '../protocol/messages.ts';
import { substituteRefs } from '../protocol/spec.ts';
import { serializeError } from '../errors.ts';
import { resolveFunction, type TaskFunction } from './functions.ts';
import type { ExecResult, ExecTask } from './state-machine.ts';

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
const LARGE = 16 * 1024;
const FLUSH_MS = 2;

let queue: ExecTask[] = [];
let head = 0;
let running = false;
let results: ExecResult[] = [];
let lastFlush = performance.now();

const fns = new Map<number, FnDef>();

port.on('message', (msg: { tasks: ExecTask[] } | { fns: [number, FnDef][] }) => {
  if ('fns' in msg) {
    for (const [id, def] of msg.fns) fns.set(id, def);
    return;
  }
  if (head >= queue.length) {
    queue = msg.tasks;
    head = 0;
  } else {
    for (const t of msg.tasks) queue.push(t);
  }
  if (!running) void runQueue();
});

async function runQueue(): Promise<void> {
  running = true;
  while (head < queue.length) {
    const t = queue[head++] as ExecTask;
    const r = runOne(t);
    results.push(r instanceof Promise ? await r : r);
    if (head >= queue.length || performance.now() - lastFlush >= FLUSH_MS) flush();
  }
  queue = [];
  head = 0;
  running = false;
}

function fail(t: ExecTask, err: unknown, duration: number): ExecResult {
  return { key: t.key, run: t.run, error: serializeError(err), duration };
}

function finish(t: ExecTask, value: unknown, start: number): ExecResult {
  const duration = (performance.now() - start) / 1000;
  if (typeof value === 'function' || typeof value === 'symbol') {
    return fail(t, new TypeError(`task ${t.key} returned a ${typeof value}, which cannot be sent to other machines`), duration);
  }
  try {
    const bytes = encode(value);
    return { key: t.key, run: t.run, bytes: bytes.length >= LARGE ? encodeOwned(value) : bytes, duration };
  } catch (err) {
    return fail(t, new TypeError(`the result of task ${t.key} cannot be serialized: ${(err as Error).message}`), duration);
  }
}

function runOne(t: ExecTask): ExecResult | Promise<ExecResult> {
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
      const values = t.depData.map((d) => decode(d));
      const keys = t.depKeys;
      args = substituteRefs(args, (k) => values[keys.indexOf(k)]) as unknown[];
    }
  } catch (err) {
    return fail(t, err, 0);
  }
  const call = (fn: TaskFunction): ExecResult | Promise<ExecResult> => {
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

/** Posts the results so far; small result bytes share one transferred buffer. */
function flush(): void {
  lastFlush = performance.now();
  if (results.length === 0) return;
  let small = 0;
  for (const r of results) if (r.bytes && r.bytes.length < LARGE) small += r.bytes.length;
  const chunk = new ArrayBuffer(small);
  const view = new Uint8Array(chunk);
  const transfer: ArrayBuffer[] = [chunk];
  let off = 0;
  for (const r of results) {
    const b = r.bytes;
    if (!b) continue;
    if (b.length < LARGE) {
      view.set(b, off);
      r.bytes = new Uint8Array(chunk, off, b.length);
      off += b.length;
    } else {
      transfer.push(b.buffer as ArrayBuffer);
    }
  }
  port?.postMessage({ results }, transfer);
  results = [];
}
