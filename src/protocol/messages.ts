/**
 * Every message weft sends, as zod schemas. A frame from the network is
 * decoded and each message in it parsed with the schema for its direction;
 * anything else is a protocol error for that one connection.
 *
 * Hot-path messages are columnar (`finished`, `in-memory`, `free`): one
 * message carries many keys, so a batch of a thousand results is one object.
 */
import { z } from 'zod';

export const PROTOCOL_VERSION = 1;

const key = z.string().min(1).max(4096);
const keys = z.array(key);
const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected binary data');
const count = z.number().int().nonnegative();
const id = z.number().int().nonnegative();
const resources = z.record(z.string().min(1), z.number().nonnegative().finite());

export const serializedError = z.object({
  name: z.string(),
  message: z.string(),
  stack: z.string().optional(),
  failedKey: z.string().optional(),
});

/** Values travel as msgpack bytes; large ones leave `null` here and follow as raw frames. */
const blobs = z.array(bytes.nullable());
const rawLengths = z.array(count).optional();

// ---------------------------------------------------------------- handshake

export const workerInfo = z.object({
  name: z.string().min(1).max(256),
  /** ws:// address of the worker's data server, where peers fetch results. */
  address: z.string().min(1),
  nthreads: z.number().int().min(1).max(1024),
  resources: resources.default({}),
  memoryLimit: count.default(0),
  pid: count.default(0),
});
export type WorkerInfo = z.infer<typeof workerInfo>;

export const hello = z.object({
  op: z.literal('hello'),
  role: z.enum(['client', 'worker', 'peer']),
  version: z.number().int(),
  token: z.string().optional(),
  worker: workerInfo.optional(),
});
export type Hello = z.infer<typeof hello>;

export const welcome = z.object({ op: z.literal('welcome'), version: z.number().int(), id: z.string() });
export const refused = z.object({ op: z.literal('refused'), reason: z.string() });
export const handshakeReply = z.discriminatedUnion('op', [welcome, refused]);

// ---------------------------------------------------------------- client → scheduler

export const taskMsg = z.object({
  key,
  /** msgpack of `{ f, a }`: the function reference and the arguments. Opaque to the scheduler. */
  spec: bytes,
  deps: keys,
  group: z.string().max(256).optional(),
  priority: z.number().finite().optional(),
  retries: z.number().int().min(0).max(1000).optional(),
  resources: resources.optional(),
  workers: z.array(z.string()).optional(),
});
export type TaskMsg = z.infer<typeof taskMsg>;

export const clientToScheduler = z.discriminatedUnion('op', [
  z.object({ op: z.literal('update-graph'), id, tasks: z.array(taskMsg), wants: keys }),
  z.object({ op: z.literal('release'), keys }),
  z.object({ op: z.literal('want'), id, keys }),
  z.object({ op: z.literal('scattered'), id, keys, nbytes: z.array(count), worker: z.string() }),
  z.object({ op: z.literal('who-has'), id, keys }),
  z.object({ op: z.literal('workers'), id }),
]);
export type ClientToScheduler = z.infer<typeof clientToScheduler>;

// ---------------------------------------------------------------- scheduler → client

export const workerSummary = z.object({
  name: z.string(),
  address: z.string(),
  nthreads: z.number(),
  resources,
  processing: count,
  stored: count,
  storedBytes: count,
  memory: count,
  pid: count,
});
export type WorkerSummary = z.infer<typeof workerSummary>;

export const schedulerToClient = z.discriminatedUnion('op', [
  z.object({ op: z.literal('graph-ok'), id }),
  z.object({ op: z.literal('graph-rejected'), id, error: serializedError, keys }),
  z.object({ op: z.literal('in-memory'), keys }),
  z.object({ op: z.literal('erred'), key, error: serializedError }),
  z.object({ op: z.literal('lost'), keys }),
  z.object({ op: z.literal('no-worker'), keys, reason: z.string() }),
  z.object({ op: z.literal('want-reply'), id, missing: keys }),
  z.object({ op: z.literal('who-has-reply'), id, who: z.array(z.array(z.string())) }),
  z.object({ op: z.literal('workers-reply'), id, workers: z.array(workerSummary) }),
  z.object({ op: z.literal('scattered-ok'), id, error: z.string().optional() }),
]);
export type SchedulerToClient = z.infer<typeof schedulerToClient>;

// ---------------------------------------------------------------- worker → scheduler

export const workerToScheduler = z.discriminatedUnion('op', [
  z.object({
    op: z.literal('finished'),
    keys,
    runs: z.array(count),
    nbytes: z.array(count),
    /** Seconds each task ran, for the scheduler's duration estimates. */
    durations: z.array(z.number().nonnegative()),
  }),
  z.object({ op: z.literal('erred'), key, run: count, error: serializedError }),
  /** Tasks handed to an executor thread: the ones to blame if this worker dies. */
  z.object({ op: z.literal('executing'), keys, runs: z.array(count) }),
  z.object({ op: z.literal('missing'), key, run: count, dep: key, holders: z.array(z.string()) }),
  z.object({ op: z.literal('heartbeat'), executing: count, stored: count, storedBytes: count, memory: count }),
]);
export type WorkerToScheduler = z.infer<typeof workerToScheduler>;

// ---------------------------------------------------------------- scheduler → worker

export const computeMsg = z.object({
  op: z.literal('compute'),
  key,
  run: count,
  spec: bytes,
  /** Graph order: lower runs first. */
  order: z.number(),
  /** User priority: higher runs first; compared before `order`. */
  priority: z.number(),
  deps: keys,
  /** For each dependency, the data-server addresses of the workers holding it. */
  who: z.array(z.array(z.string())),
  sizes: z.array(count),
  resources: resources.optional(),
});
export type ComputeMsg = z.infer<typeof computeMsg>;

export const schedulerToWorker = z.discriminatedUnion('op', [
  computeMsg,
  z.object({ op: z.literal('free'), keys }),
]);
export type SchedulerToWorker = z.infer<typeof schedulerToWorker>;

// ---------------------------------------------------------------- peer ↔ worker data server

export const peerToWorker = z.discriminatedUnion('op', [
  z.object({ op: z.literal('get'), id, keys }),
  z.object({ op: z.literal('put'), id, keys, blobs, raw: rawLengths }),
  z.object({ op: z.literal('metrics'), id }),
]);
export type PeerToWorker = z.infer<typeof peerToWorker>;

export const workerMetrics = z.object({
  /** Bytes of results this worker sent to other workers. */
  bytesSentToPeers: count,
  /** Bytes of results this worker sent to clients (gather). */
  bytesSentToClients: count,
  /** Bytes this worker fetched from other workers. */
  bytesFetched: count,
  tasksExecuted: count,
  stored: count,
  storedBytes: count,
});
export type WorkerMetrics = z.infer<typeof workerMetrics>;

export const workerToPeer = z.discriminatedUnion('op', [
  z.object({ op: z.literal('data'), id, keys, blobs, raw: rawLengths, missing: keys }),
  z.object({ op: z.literal('put-ok'), id, nbytes: z.array(count) }),
  z.object({ op: z.literal('metrics-reply'), id, metrics: workerMetrics }),
]);
export type WorkerToPeer = z.infer<typeof workerToPeer>;

// ---------------------------------------------------------------- any direction

/** Sent just before a connection is closed for a protocol error. */
export const errorMsg = z.object({ op: z.literal('error'), message: z.string() });

/** Framing: the next `n` raw frames concatenate into one batch frame too large for one frame. */
export const partsMsg = z.object({ op: z.literal('$parts'), n: z.number().int().min(1), total: count });
