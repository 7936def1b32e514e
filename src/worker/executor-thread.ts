/**
 * Runs tasks in a worker thread, so the worker's main thread stays free to
 * heartbeat and serve data however long a task computes. Receives batches of
 * tasks in columns (see ThreadBatch), runs them in order, and posts results
 * back in the same order, in columns, at least every 5 ms while busy (at once
 * when idle), all result bytes in one transferred buffer.
 *
 * Tasks are numbered per thread (`seq`): the main thread matches results to
 * tasks by order, and a task sent to run after another one on this thread
 * names it by number, so no key strings cross the thread boundary on the hot
 * path.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { decode, decodeCopy, encodeOwned, encodeTransient, typedArrayViews } from '../protocol/codec.ts';
import { ByteWriter, NOT_SIMPLE, readSimple, writeSimple } from '../protocol/simple-codec.ts';
import { MAX_EVENT_BYTES, MAX_KEY, MAX_TOPIC, type FnDef } from '../protocol/messages.ts';
import { substituteRefs } from '../protocol/spec.ts';
import { CancelledError, serializeError, WeftError, type SerializedError } from '../errors.ts';
import { forgetFunction, resolveFunction, type TaskFunction } from './functions.ts';
import { describeReload, followUserModules, userCodeGeneration } from '../util/user-modules.ts';
import { RESULT_ERROR, RESULT_HANDED_ON, RESULT_OK, RESULT_REQUEUE, type FromThread, type LateResult, type ResultBatch, type ThreadBatch, type ThreadEvents, type ThreadScheduler } from './thread-protocol.ts';
import { fractionList } from '../util/lists.ts';
import { provideTaskContext, TASK_REJOIN, type TaskContext } from './task-context.ts';
import type { Client } from '../client/client.ts';
import { ACTOR_HOST, type ActorHost } from './actors.ts';

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
// Inputs here are this thread's own (or decoded with decodeCopy): typed arrays inside them need no copy of their own.
typedArrayViews();
/**
 * The number of the task running now (-1: none), in memory the pool shares:
 * if this thread dies (process.exit, out of memory, ended as a runaway), the
 * pool knows which task did it, and requeues the others.
 */
const runningSlot = (workerData as { running: Int32Array }).running;
const FLUSH_MS = 5;

/**
 * Chains kept on this thread: tasks (by seq) whose value a queued task will
 * take in memory, with how many tasks want each, and the values kept.
 */
const wanted = new Map<number, number>();
const kept = new Map<number, { value: unknown; bytes: Uint8Array | null }>();

const fns = new Map<number, FnDef>();
/** Functions resolved so far, by id (a promise while a module loads). */
const resolvedFns = new Map<number, TaskFunction>();
let codeGeneration = 0;
// Task modules edited while the worker runs are imported anew for the tasks after the edit; the worker logs it.
followUserModules((r) => port.postMessage({ note: describeReload(r, 'task module') } satisfies FromThread));
const queue: ThreadBatch[] = [];
let running = false;
let lastFlush = performance.now();

/**
 * Results not yet posted, as columns. Result bytes are written straight into
 * `out` (one buffer per post, not one per result); large binary results go
 * in buffers of their own (see encodeLarge), listed in `outLarge`.
 */
let outStatus: number[] = [];
let outDurations = fractionList();
let outEnds: number[] = [];
let outLarge: [number, ArrayBuffer][] = [];
let outHandedOn: [number, number][] = [];
let outErrors: [number, SerializedError][] = [];
const out = new ByteWriter(4096);

port.on('message', (msg: { tasks: ThreadBatch } | { fns: [number, FnDef][] } | { forgetFns: number[] } | { cancel: number[] } | { actorCall: ActorCall } | { dropActor: string } | { gc: true }) => {
  if ('gc' in msg) {
    // The worker is over its memory limit: inputs given to tasks here are garbage until this thread collects, which an idle thread may not do for a long time.
    (globalThis as { gc?: () => void }).gc?.();
    return;
  }
  if ('actorCall' in msg) {
    void callActor(msg.actorCall);
    return;
  }
  if ('dropActor' in msg) {
    actors.delete(msg.dropActor);
    return;
  }
  if ('fns' in msg) {
    for (const [id, def] of msg.fns) fns.set(id, def);
    return;
  }
  if ('forgetFns' in msg) {
    for (const id of msg.forgetFns) {
      const def = fns.get(id);
      fns.delete(id);
      resolvedFns.delete(id);
      if (def) forgetFunction(def[0], def[1]);
    }
    return;
  }
  if ('cancel' in msg) {
    for (const seq of msg.cancel) cancelTask(seq);
    return;
  }
  const a = msg.tasks.afters;
  for (let i = 1; i < a.length; i += 3) {
    const p = a[i] as number;
    if (p >= 0) wanted.set(p, (wanted.get(p) ?? 0) + 1);
  }
  queue.push(msg.tasks);
  if (!running) void runQueue();
});

/*
 * The task running now (one at a time per thread) and its context, made on
 * first use: a task that never asks for it costs two assignments.
 */
let currentSeq = -1;
/** The last task started: tasks run in the order of their numbers. */
let lastSeq = -1;
type Ctx = TaskContext & { ctl: AbortController | null; readonly seq: number };
let currentCtx: Ctx | null = null;
/**
 * Tasks that seceded (gave their thread slot back, TaskContext.secede): the
 * queue went on to the next task without them; each posts its result on
 * its own when it ends. By number, with their contexts (for cancelling).
 */
const seceded = new Map<number, Ctx>();
/** Seceded tasks that rejoined, and the order they seceded in (module-level rejoin takes the latest). */
const rejoined = new Set<number>();
const secedeOrder: number[] = [];
/** Set while runQueue waits on an async task: called when that task secedes, so the queue goes on. */
let onSecede: (() => void) | null = null;
/** Tasks cancelled before they started: skipped when their turn comes. */
const cancelledSeqs = new Set<number>();

provideTaskContext(() => {
  if (currentSeq < 0) return null;
  currentCtx ??= makeContext();
  return currentCtx;
});

function makeContext(): Ctx {
  const ctx: Ctx = {
    ctl: null as AbortController | null,
    seq: currentSeq,
    emit: emitEvent,
    earlyResult: putEarly,
    get signal(): AbortSignal {
      ctx.ctl ??= new AbortController();
      return ctx.ctl.signal;
    },
    client: taskClient,
    secede: () => secedeTask(ctx),
    rejoin: () => {
      rejoinTask(ctx.seq);
      return Promise.resolve();
    },
  };
  return ctx;
}

function cancelTask(seq: number): void {
  const away = seceded.get(seq);
  if (seq === currentSeq || away) {
    const ctx = away ?? (currentCtx ??= makeContext());
    ctx.ctl ??= new AbortController();
    ctx.ctl.abort(new CancelledError('the task was cancelled'));
  } else if (seq > lastSeq) cancelledSeqs.add(seq);
}

/**
 * The task of `ctx` gives its slot back: the results before it are posted,
 * the pool told, and the queue goes on to the next task while this one waits.
 */
function secedeTask(ctx: Ctx): Promise<void> {
  if (seceded.has(ctx.seq)) return Promise.resolve();
  if (ctx.seq !== currentSeq) throw new WeftError('secede() must be called by the task running now, before it waits on anything: keep taskContext() from the start of the task and call ctx.secede()');
  flush(performance.now());
  seceded.set(ctx.seq, ctx);
  secedeOrder.push(ctx.seq);
  port?.postMessage({ seceded: ctx.seq } satisfies FromThread);
  endTask();
  onSecede?.();
  return Promise.resolve();
}

/** A seceded task counts against its worker's threads again. */
function rejoinTask(seq: number): void {
  if (!seceded.has(seq) || rejoined.has(seq)) return;
  rejoined.add(seq);
  port?.postMessage({ rejoined: seq } satisfies FromThread);
}

(globalThis as Record<symbol, unknown>)[TASK_REJOIN] = (): void => {
  if (seceded.size === 0) throw new WeftError('rejoin() was called with no task of this thread seceded: call secede() first');
  // Which task calls cannot be told after it waited; with one seceded task here it is that one. With several, counting
  // another back would hold a thread for a task still waiting on its subtasks (they could then wait behind it for ever):
  // none is counted back now, each is as it ends. ctx.rejoin() names its task.
  const waiting = secedeOrder.filter((seq) => !rejoined.has(seq));
  if (waiting.length === 1) rejoinTask(waiting[0] as number);
};

/** A seceded task ended: its result (or error), with its events ahead of it, on its own. */
function lateResult(seq: number, start: number, value: unknown, err: unknown): void {
  seceded.delete(seq);
  rejoined.delete(seq);
  const i = secedeOrder.indexOf(seq);
  if (i >= 0) secedeOrder.splice(i, 1);
  const duration = (performance.now() - start) / 1000;
  let late: LateResult;
  if (err !== undefined) late = { seq, duration, error: serializeError(err) };
  else {
    try {
      late = { seq, duration, bytes: encodeOwned(value === undefined ? null : value) };
    } catch (e) {
      late = { seq, duration, error: serializeError(e) };
    }
  }
  const events = takeEvents();
  const transfer = late.bytes ? [late.bytes.buffer as ArrayBuffer] : [];
  port?.postMessage((events ? { late, events } : { late }) satisfies FromThread, transfer);
}

/** Actors kept on this thread (worker/actors.ts), by id; calls on each run one after another. */
const actors = new Map<string, { instance: object; queue: Promise<void> }>();
interface ActorCall {
  callId: number;
  actorId: string;
  method: string;
  args: Uint8Array;
}

(globalThis as Record<symbol, ActorHost>)[ACTOR_HOST] = {
  keep(actorId: string, instance: object): void {
    actors.set(actorId, { instance, queue: Promise.resolve() });
    port?.postMessage({ actorHere: { actorId, seq: currentSeq } } satisfies FromThread);
  },
  resolveClass: async (ref: string) => resolveFunction(0, ref, cwd),
};

/** Runs a method of an actor here, after the calls before it; posts its value or error. */
function callActor(c: ActorCall): Promise<void> {
  const a = actors.get(c.actorId);
  const answer = (r: { bytes?: Uint8Array; error?: SerializedError }): void => port?.postMessage({ actorReply: { callId: c.callId, ...r } } satisfies FromThread);
  if (!a) {
    answer({ error: { name: 'ActorLostError', message: `actor ${c.actorId} is not on this worker (its worker was restarted, or it was released)` } });
    return Promise.resolve();
  }
  const run = async (): Promise<void> => {
    try {
      const fn = (a.instance as Record<string, unknown>)[c.method];
      if (typeof fn !== 'function' || c.method === 'constructor' || c.method.startsWith('_')) throw new WeftError(`the actor has no method ${c.method.slice(0, 100)} (methods whose names start with _ are not callable)`);
      const args = decode(c.args);
      const value: unknown = await (fn as (...x: unknown[]) => unknown).apply(a.instance, Array.isArray(args) ? args : []);
      answer({ bytes: encodeOwned(value === undefined ? null : value) });
    } catch (err) {
      answer({ error: serializeError(err) });
    }
  };
  a.queue = a.queue.then(run);
  return a.queue;
}

/** The thread's client of the scheduler (TaskContext.client), made on first use. */
let client: Promise<Client> | null = null;
function taskClient(): Promise<Client> {
  const sched = (workerData as { scheduler?: ThreadScheduler }).scheduler;
  if (!sched) return Promise.reject(new WeftError('this worker was started without a scheduler to connect a task client to'));
  client ??= import('../client/client.ts').then(({ Client: C }) => C.connect(sched.address, { ...(sched.token !== undefined ? { token: sched.token } : {}), ...(sched.tls ? { tls: sched.tls } : {}) }));
  client.catch(() => (client = null));
  return client;
}

/** Events published by tasks and not yet posted, in order. */
let evTopics: string[] = [];
let evData: Uint8Array[] = [];
let evTimer: NodeJS.Timeout | null = null;

function emitEvent(topic: string, data: unknown): void {
  if (typeof topic !== 'string' || topic.length === 0 || topic.length > MAX_TOPIC) throw new TypeError(`an event topic must be a string of 1 to ${MAX_TOPIC} characters`);
  const bytes = encodeOwned(data);
  if (bytes.length > MAX_EVENT_BYTES) throw new RangeError(`an event on topic ${topic} is ${bytes.length} bytes encoded; the limit is ${MAX_EVENT_BYTES} (publish a summary, and keep large data in task results)`);
  evTopics.push(topic);
  evData.push(bytes);
  postSoon();
}

/** Events (and results put early) out now if the last post is old enough (a synchronous task cannot wait for a timer), else shortly. */
function postSoon(): void {
  const now = performance.now();
  if (now - lastFlush >= FLUSH_MS) postEvents(now);
  else evTimer ??= setTimeout(() => postEvents(performance.now()), FLUSH_MS);
}

/** Results put early by tasks (TaskContext.earlyResult), not yet posted: they go with the events, ahead of them. */
let early: NonNullable<ThreadEvents['early']> | null = null;

function putEarly(key: string, value: unknown): number {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY) throw new TypeError(`a result's key must be a string of 1 to ${MAX_KEY} characters`);
  const bytes = encodeOwned(value);
  early ??= { seqs: [], keys: [], data: [] };
  early.seqs.push(currentSeq);
  early.keys.push(key);
  early.data.push(bytes);
  postSoon();
  return bytes.length;
}

function takeEvents(): ThreadEvents | undefined {
  if (evTimer) {
    clearTimeout(evTimer);
    evTimer = null;
  }
  if (evTopics.length === 0 && early === null) return undefined;
  const events: ThreadEvents = { topics: evTopics, data: evData };
  if (early !== null) events.early = early;
  evTopics = [];
  evData = [];
  early = null;
  return events;
}

function postEvents(now: number): void {
  const events = takeEvents();
  if (!events) return;
  lastFlush = now;
  port?.postMessage({ events });
}

/** Stands for a kept input that is not here (see runOne). */
const EMPTY_INPUT = new Uint8Array(0);

/** The state of one batch being run, shared by the helpers below instead of per-task closures. */
interface Cursor {
  b: ThreadBatch;
  view: Uint8Array;
  /** Next entry of `ends`, next dependency key, start of the next slice. */
  e: number;
  dk: number;
  start: number;
  /** The batch's given inputs by index in depKeys (null: none). */
  given: Map<number, ArrayBuffer> | null;
  /** Inputs to keep in `inputs`, each in its own buffer, and inputs read from there, by index in depKeys (null: none). */
  keep: Map<number, ArrayBuffer> | null;
  cached: Set<number> | null;
}

/**
 * Inputs this thread keeps because other tasks take them too, by key (the
 * worker's ExecutorPool.post decides what comes and goes). Each task decodes
 * its own value of them (decodeCopy), so no task sees another's changes.
 */
const inputs = new Map<string, Uint8Array>();

/** Moves the cursor past the next slice; returns where that slice ends (it starts at the old `c.start`). */
function skip(c: Cursor): number {
  const end = c.b.ends[c.e++] as number;
  c.start = end;
  return end;
}

function slice(c: Cursor): Uint8Array {
  const start = c.start;
  return c.view.subarray(start, skip(c));
}

async function runQueue(): Promise<void> {
  running = true;
  while (queue.length > 0) {
    const b = queue.shift() as ThreadBatch;
    // Buffers, not plain Uint8Arrays: msgpack's bin values decode as views of these, and a task given a Buffer must get a Buffer.
    for (const k of b.drop) inputs.delete(k);
    const c: Cursor = { b, view: Buffer.from(b.chunk), e: 0, dk: 0, start: 0, given: b.given.length > 0 ? new Map(b.given) : null, keep: b.keep.length > 0 ? new Map(b.keep) : null, cached: b.cached.length > 0 ? new Set(b.cached) : null };
    const n = b.fns.length;
    // Tasks whose large value may go to the task behind them without a copy for the main thread (ExecTask.ephemeral).
    const ephemeral = b.ephemeral.length > 0 ? new Set(b.ephemeral) : null;
    let ai = 0;
    let t0 = performance.now();
    for (let i = 0; i < n; i++) {
      let producer = -1;
      let afterDep = -1;
      if (ai < b.afters.length && b.afters[ai] === i) {
        producer = b.afters[ai + 1] as number;
        afterDep = b.afters[ai + 2] as number;
        ai += 3;
      }
      const pending = runOne(c, b.base + i, b.fns[i] as number, b.depCounts[i] as number, producer, afterDep, t0, ephemeral?.has(i) === true);
      // Waited on until it ends, or until it secedes (its result then goes on its own).
      if (pending) await new Promise<void>((resolve) => {
        onSecede = resolve;
        void pending.then(resolve);
      });
      onSecede = null;
      const t1 = performance.now();
      if ((i === n - 1 && queue.length === 0) || t1 - lastFlush >= FLUSH_MS) flush(t1);
      t0 = t1;
    }
  }
  running = false;
}

/** Ends a result whose bytes (if any) are in `out` up to now. */
function pushResult(status: number, duration: number): void {
  outStatus.push(status);
  outDurations.push(duration);
  outEnds.push(out.pos);
}

/** A failed task keeps no value: its dependents on this thread find none and go back. */
function fail(err: unknown, duration: number): void {
  outErrors.push([outStatus.length, serializeError(err)]);
  pushResult(RESULT_ERROR, duration);
}

/** Takes the in-memory input (the result of task `seq` on this thread); undefined if it is not here. */
function takeKept(seq: number): { value: unknown } | undefined {
  const left = (wanted.get(seq) ?? 1) - 1;
  if (left > 0) wanted.set(seq, left);
  else wanted.delete(seq);
  const k = kept.get(seq);
  if (!k) return undefined;
  if (left > 0) {
    // Others still want it: a private copy (large binary results' bytes may be gone to the main thread).
    return { value: ArrayBuffer.isView(k.value) && !(k.value instanceof DataView) ? (k.value as Uint8Array).slice() : decodeCopy(k.bytes as Uint8Array) }; // a value handed on (bytes null) is always a typed array
  }
  kept.delete(seq);
  return { value: k.value };
}

/** msgpackr's names of typed arrays, in the order of its type codes (see its typed-array extension). */
const TYPED = ['Int8', 'Uint8', 'Uint8Clamped', 'Int16', 'Uint16', 'Int32', 'Uint32', 'Float32', 'Float64', 'BigInt64', 'BigUint64'].map((t) => `${t}Array`);
const LARGE = 64 * 1024;

/** msgpack's header for a large binary value (bin 32 for a Buffer, msgpackr's typed-array extension otherwise), or null. */
function largeHeader(value: unknown): Uint8Array | null {
  if (!ArrayBuffer.isView(value) || value.byteLength < LARGE || value instanceof DataView) return null;
  const name = value.constructor.name;
  const n = value.byteLength;
  if (name === 'Buffer') {
    const h = new Uint8Array(5);
    h[0] = 0xc6;
    new DataView(h.buffer).setUint32(1, n);
    return h;
  }
  const type = TYPED.indexOf(name);
  if (type < 0 || n + 1 > 0xffffffff) return null;
  const h = new Uint8Array(7);
  h[0] = 0xc9;
  new DataView(h.buffer).setUint32(1, n + 1);
  h[5] = 0x74; // 't': typed array
  h[6] = type;
  return h;
}

/**
 * A large binary result (a Buffer or typed array) as msgpack, in a buffer of
 * its own: written once, then transferred to the main thread whole instead of
 * being copied again into the batch. Null for anything else.
 */
function encodeLarge(value: unknown): Uint8Array | null {
  const header = largeHeader(value);
  if (!header) return null;
  const v = value as ArrayBufferView;
  // Not zero-filled: every byte is written below (zeroing 16 MiB first costs as much as the copy).
  const out = Buffer.allocUnsafeSlow(header.length + v.byteLength);
  out.set(header, 0);
  out.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), header.length);
  return out;
}

/**
 * A large result that fills the end of a buffer this task was given (the
 * usual case: the task changed its input in place and returned it) goes back
 * in that buffer, its header written into the bytes before it, without a
 * copy: 16 MiB copied into fresh memory costs this machine 10-20 ms. The
 * buffer was the worker's only copy and this task its only user, so nothing
 * else reads it. Null when the value is anything else.
 */
function encodeInPlace(value: unknown, given: ArrayBuffer[]): Uint8Array | null {
  if (!ArrayBuffer.isView(value) || !given.includes(value.buffer as ArrayBuffer) || value.byteOffset + value.byteLength !== value.buffer.byteLength) return null;
  const header = largeHeader(value);
  if (!header || header.length !== value.byteOffset) return null;
  const whole = new Uint8Array(value.buffer);
  whole.set(header, 0);
  return whole;
}

/** Ends task `seq` with its value; `handOn`: it may go to the task behind it without a copy (ExecTask.ephemeral); `given`: the buffers of inputs given to it (Cursor.given). */
function finish(seq: number, value: unknown, start: number, handOn: boolean, given: ArrayBuffer[] | null): void {
  const duration = (performance.now() - start) / 1000;
  if (typeof value === 'function' || typeof value === 'symbol') {
    fail(new TypeError(`the task returned a ${typeof value}, which cannot be sent to other machines`), duration);
    return;
  }
  if (handOn && wanted.has(seq) && ArrayBuffer.isView(value) && value.byteLength >= LARGE) {
    // Only the task behind it here needs this value, and takes it in memory: no copy for the main thread.
    kept.set(seq, { value, bytes: null });
    outHandedOn.push([outStatus.length, value.byteLength]);
    pushResult(RESULT_HANDED_ON, duration);
    return;
  }
  const at = out.pos;
  let large: Uint8Array | null;
  try {
    // Kept for a later task here (wanted), the value must stay readable: then a copy goes.
    large = (given !== null && !wanted.has(seq) ? encodeInPlace(value, given) : null) ?? encodeLarge(value);
    if (!large && !writeSimple(out, value)) out.bytes(encodeTransient(value));
  } catch (err) {
    out.pos = at;
    fail(new TypeError(`the task's result cannot be serialized: ${(err as Error).message}`), duration);
    return;
  }
  if (large) outLarge.push([outStatus.length, large.buffer as ArrayBuffer]);
  // A later task here takes the value in memory; the bytes are kept for a second taker.
  if (wanted.has(seq)) kept.set(seq, { value, bytes: large ?? out.buf.slice(at, out.pos) });
  pushResult(RESULT_OK, duration);
}

/** Decodes the arguments and puts the task's inputs in place of their references. */
function prepareArgs(chunk: Uint8Array, argStart: number, argEnd: number, depKeys: string[] | null, depBytes: Uint8Array[] | null, afterDep: number, local: unknown, copied: boolean[] | null): unknown[] {
  // Read in place: a view per task would cost an allocation for a few bytes.
  const simple = readSimple(chunk, argStart, argEnd);
  const decoded = simple !== NOT_SIMPLE ? simple : decode(chunk.subarray(argStart, argEnd));
  if (!Array.isArray(decoded)) throw new TypeError('the task arguments are not an array');
  if (!depKeys || !depBytes) return decoded;
  const values = depBytes.map((bytes, j) => {
    if (j === afterDep) return local;
    if (bytes === EMPTY_INPUT) throw new Error(`input ${depKeys[j]} was to be kept by this executor thread, and is not: a bug in weft`);
    const v = readSimple(bytes);
    return v !== NOT_SIMPLE ? v : copied?.[j] === true ? decodeCopy(bytes) : decode(bytes);
  });
  return substituteRefs(decoded, (i) => {
    if (i >= values.length) throw new TypeError(`the task's arguments refer to its dependency #${i}, but it has ${values.length}`);
    return values[i];
  }) as unknown[];
}

/**
 * Runs task `seq`. `afterDep` is the index of its input computed on this
 * thread by task `producer` (-1: none), which it takes from memory; when that
 * value is not here, the task goes back to the main thread.
 */
function runOne(c: Cursor, seq: number, fnId: number, ndeps: number, producer: number, afterDep: number, start: number, handOn: boolean): Promise<void> | undefined {
  // Take every slice of this task first, so the cursor stays right whatever fails.
  const argStart = c.start;
  const argEnd = skip(c);
  let depKeys: string[] | null = null;
  let depBytes: Uint8Array[] | null = null;
  let givenHere: ArrayBuffer[] | null = null;
  // Inputs this thread keeps for other tasks too: decoded into memory of this task's own.
  let copied: boolean[] | null = null;
  if (ndeps > 0) {
    depKeys = new Array<string>(ndeps);
    depBytes = new Array<Uint8Array>(ndeps);
    for (let j = 0; j < ndeps; j++) {
      const dk = c.dk;
      const given = c.given?.get(dk);
      const key = (depKeys[j] = c.b.depKeys[c.dk++] as string);
      let s: Uint8Array = slice(c);
      let kept = false;
      if (c.cached?.has(dk)) {
        // Missing only if the pool's books and this thread's disagree: the task fails, and says so.
        s = inputs.get(key) ?? EMPTY_INPUT;
        kept = true;
      } else {
        // In a buffer of its own, kept as it came (a slice of the batch's buffer would keep all of it alive).
        const own = c.keep?.get(dk);
        if (own) {
          s = Buffer.from(own);
          inputs.set(key, s);
          kept = true;
        }
      }
      if (kept) (copied ??= new Array<boolean>(ndeps).fill(false))[j] = true;
      depBytes[j] = given ? Buffer.from(given) : s;
      if (given) (givenHere ??= []).push(given);
    }
  }
  let local: unknown;
  if (afterDep >= 0) {
    const got = producer >= 0 ? takeKept(producer) : undefined;
    if (!got) {
      pushResult(RESULT_REQUEUE, 0);
      return undefined;
    }
    local = got.value;
  }
  let args: unknown[];
  try {
    args = prepareArgs(c.view, argStart, argEnd, depKeys, depBytes, afterDep, local, copied);
  } catch (err) {
    fail(err, 0);
    return undefined;
  }
  if (codeGeneration !== userCodeGeneration()) {
    // A task module changed on disk: this task and those after it take their functions from the new code.
    codeGeneration = userCodeGeneration();
    resolvedFns.clear();
  }
  const fn = resolvedFns.get(fnId);
  if (fn) return call(seq, fn, args, start, handOn, givenHere);
  const def = fns.get(fnId);
  if (!def) {
    fail(new Error(`the task uses function #${fnId}, which was never defined on this worker`), 0);
    return undefined;
  }
  let resolved: TaskFunction | Promise<TaskFunction>;
  try {
    resolved = resolveFunction(def[0], def[1], cwd);
  } catch (err) {
    fail(err, 0);
    return undefined;
  }
  if (!(resolved instanceof Promise)) {
    resolvedFns.set(fnId, resolved);
    return call(seq, resolved, args, start, handOn, givenHere);
  }
  return resolved.then(
    (f) => {
      resolvedFns.set(fnId, f);
      return call(seq, f, args, performance.now(), handOn, givenHere);
    },
    (err: unknown) => fail(err, 0),
  );
}

function call(seq: number, fn: TaskFunction, args: unknown[], start: number, handOn: boolean, given: ArrayBuffer[] | null): Promise<void> | undefined {
  if (cancelledSeqs.size > 0 && cancelledSeqs.delete(seq)) {
    fail(new CancelledError('the task was cancelled before it started'), 0);
    return undefined;
  }
  currentSeq = lastSeq = seq;
  runningSlot[0] = seq;
  currentCtx = null;
  let out: unknown;
  try {
    out = fn(...args);
  } catch (err) {
    if (seceded.has(seq)) {
      lateResult(seq, start, undefined, err ?? new Error('the task failed'));
      return undefined;
    }
    endTask();
    fail(err, (performance.now() - start) / 1000);
    return undefined;
  }
  if (out instanceof Promise) {
    return out.then(
      (v: unknown) => {
        if (seceded.has(seq)) return lateResult(seq, start, v, undefined);
        endTask();
        finish(seq, v, start, handOn, given);
      },
      (err: unknown) => {
        if (seceded.has(seq)) return lateResult(seq, start, undefined, err ?? new Error('the task failed'));
        endTask();
        fail(err, (performance.now() - start) / 1000);
      },
    );
  }
  // Seceded and done at once (a task that does not wait): its result goes on its own all the same.
  if (seceded.has(seq)) {
    lateResult(seq, start, out, undefined);
    return undefined;
  }
  endTask();
  finish(seq, out, start, handOn, given);
  return undefined;
}

function endTask(): void {
  currentSeq = -1;
  runningSlot[0] = -1;
  currentCtx = null;
}

/**
 * Posts the results so far, in columns: small results' bytes in one
 * transferred buffer, large binary ones (see encodeLarge) transferred as they are.
 */
function flush(now: number): void {
  lastFlush = now;
  // A task's events go in the same message as its result, ahead of it.
  const events = takeEvents();
  const n = outStatus.length;
  if (n === 0) {
    if (events) port?.postMessage({ events });
    return;
  }
  const chunk = out.buf.slice(0, out.pos).buffer;
  out.pos = 0;
  const large = outLarge;
  const result: ResultBatch = { status: Uint8Array.from(outStatus), durations: Float64Array.from(outDurations), ends: Uint32Array.from(outEnds), errors: outErrors, large, handedOn: outHandedOn, chunk };
  outStatus = [];
  outDurations = fractionList();
  outEnds = [];
  outLarge = [];
  outHandedOn = [];
  outErrors = [];
  port?.postMessage(events ? { results: result, events } : { results: result }, large.length === 0 ? [chunk] : [chunk, ...large.map(([, b]) => b)]);
}
