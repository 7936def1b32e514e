/**
 * What the worker's main thread and its executor threads send each other:
 * tasks and results in columns, with the bytes of a batch in one transferred
 * buffer.
 */
import type { SerializedError } from '../errors.ts';

/**
 * Tasks for a thread, in columns. Task i has number `base + i` on that thread
 * (results come back in the same order), function fns[i] and depCounts[i]
 * inputs; `chunk` holds, per task, its arguments then its inputs, each ending
 * at the next entry of `ends`; depKeys names the inputs in order.
 */
export interface ThreadBatch {
  base: number;
  fns: Int32Array;
  depCounts: Int32Array;
  ends: Uint32Array;
  /**
   * Triples [task index, number of the task on this thread that computes one
   * of its inputs (-1: unknown), index of that input]: the input is sent empty
   * and taken from the thread's memory.
   */
  afters: number[];
  depKeys: string[];
  chunk: ArrayBuffer;
  /**
   * Inputs given to the thread in buffers of their own (transferred, not
   * copied into `chunk`, where their slice is empty): [index in depKeys, buffer].
   */
  given: [number, ArrayBuffer][];
  /** Indices of tasks whose large value may go to the task behind them without a copy (ExecTask.ephemeral). */
  ephemeral: number[];
  /**
   * The thread's inputs cache (see ExecutorPool.post): keys to drop from it
   * first; inputs to keep there, each in a transferred buffer of its own
   * ([index in depKeys, buffer]: the thread keeps the buffer, not a copy);
   * and indices in depKeys of inputs read from there instead. The slices of
   * both in `chunk` are empty.
   */
  drop: string[];
  keep: [number, ArrayBuffer][];
  cached: number[];
}

/**
 * Results from a thread, for the next status.length tasks it was given, in
 * order: status (RESULT_*), run time in seconds,
 * result bytes ending at ends[i] in `chunk`, and errors by result index.
 */
export interface ResultBatch {
  status: Uint8Array;
  durations: Float64Array;
  ends: Uint32Array;
  errors: [number, SerializedError][];
  /** Large binary results, each in a transferred buffer of its own (not in `chunk`). */
  large: [number, ArrayBuffer][];
  /** Results handed to the task behind them on the thread, not sent: [result index, bytes]. */
  handedOn: [number, number][];
  chunk: ArrayBuffer;
}

export const RESULT_OK = 0;
export const RESULT_ERROR = 1;
/** The task's in-memory input was not on the thread: the main thread dispatches it again. */
export const RESULT_REQUEUE = 2;
/** Done; its value went to the task behind it on the thread, not to the main thread (ResultBatch.handedOn). */
export const RESULT_HANDED_ON = 3;

/** Task events from a thread (see task-context.ts): topics[i] with msgpack bytes data[i]. */
export interface ThreadEvents {
  topics: string[];
  data: Uint8Array[];
  /** Results put early (TaskContext.earlyResult): keys[i], msgpack data[i], by the task numbered seqs[i] on the thread. */
  early?: { seqs: number[]; keys: string[]; data: Uint8Array[] };
}

/** The result of a task that seceded (see task-context.ts), sent on its own when it ends: bytes, or the error. */
export interface LateResult {
  seq: number;
  duration: number;
  bytes?: Uint8Array;
  error?: SerializedError;
}

/** What a thread needs to give tasks a client of their own (TaskContext.client). */
export interface ThreadScheduler {
  address: string;
  token?: string | undefined;
  tls?: { ca?: Buffer | undefined; cert?: Buffer | undefined; key?: Buffer | undefined } | undefined;
}

/** A thread's message: results, events (ahead of the results), or both. */
export interface FromThread {
  results?: ResultBatch;
  events?: ThreadEvents;
  /** Task `seceded` gave its thread slot back (its result comes later, as `late`); task `rejoined` took it again. */
  seceded?: number;
  rejoined?: number;
  late?: LateResult;
  /** Task `seq` made actor `actorId`, kept on this thread (worker/actors.ts). */
  actorHere?: { actorId: string; seq: number };
  /** The answer to an actor call: the method's value (msgpack), or its error. */
  actorReply?: { callId: number; bytes?: Uint8Array; error?: SerializedError };
  /** Something for the worker's log at info (a task module was imported anew). */
  note?: string;
}
