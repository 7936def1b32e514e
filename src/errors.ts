/**
 * weft's error types. Every error has a stable `name` so that callers can
 * branch on it, and a message that says what to do. Errors raised on another
 * machine keep their remote stack in `remoteStack`.
 */

/** The wire form of an error that happened elsewhere (in a task, on a worker). */
export interface SerializedError {
  name: string;
  message: string;
  stack?: string | undefined;
  /** For a dependent that failed because of another task: that task's key. */
  failedKey?: string | undefined;
}

export class WeftError extends Error {
  override name = 'WeftError';
}

/** A task raised an error on a worker. `remoteStack` is the stack there. */
export class TaskError extends WeftError {
  override name = 'TaskError';
  readonly key: string;
  /** The `name` of the error the task threw, e.g. `TypeError`, and its message. */
  readonly remoteName: string;
  readonly remoteMessage: string;
  readonly remoteStack: string | undefined;
  constructor(key: string, remote: SerializedError) {
    super(`task ${key} failed: ${remote.name}: ${remote.message}`);
    this.key = key;
    this.remoteName = remote.name;
    this.remoteMessage = remote.message;
    this.remoteStack = remote.stack;
    if (remote.stack) this.stack = `${this.name}: ${this.message}\n    --- remote stack ---\n${remote.stack}`;
  }
}

/** A function run on every worker (`client.run`) failed on one. `remoteStack` is the stack there. */
export class RunError extends WeftError {
  override name = 'RunError';
  readonly remoteName: string;
  readonly remoteStack: string | undefined;
  constructor(
    readonly worker: string,
    remote: SerializedError,
  ) {
    super(`the function run on worker ${worker} failed: ${remote.name}: ${remote.message}`);
    this.remoteName = remote.name;
    this.remoteStack = remote.stack;
    if (remote.stack) this.stack = `${this.name}: ${this.message}\n    --- remote stack ---\n${remote.stack}`;
  }
}

/** A task did not run because a task it depends on failed. */
export class DependencyError extends WeftError {
  override name = 'DependencyError';
  readonly key: string;
  readonly failedKey: string;
  readonly remoteStack: string | undefined;
  constructor(key: string, failedKey: string, remote: SerializedError) {
    super(`task ${key} did not run: its dependency ${failedKey} failed: ${remote.name}: ${remote.message}`);
    this.key = key;
    this.failedKey = failedKey;
    this.remoteStack = remote.stack;
  }
}

/** A task was running on several workers that all died; weft stops retrying it. */
export class KilledWorkerError extends WeftError {
  override name = 'KilledWorkerError';
}

/** The submitted graph is invalid (cycle, missing dependency, conflicting key). */
export class GraphError extends WeftError {
  override name = 'GraphError';
  readonly keys: string[];
  constructor(message: string, keys: string[]) {
    super(message);
    this.keys = keys;
  }
}

/** No worker in the cluster can run a task (resources or restrictions). */
export class NoWorkerError extends WeftError {
  override name = 'NoWorkerError';
}

/**
 * An actor's state was lost: its worker died (or its thread was replaced)
 * during the call, or it was released. The actor is made again on another
 * worker while its handle is held, its state from scratch; later calls go there.
 */
export class ActorLostError extends WeftError {
  override name = 'ActorLostError';
}

/** A call on a Semaphore, Lock, Event, Variable or Queue waited its whole timeout. */
export class SyncTimeoutError extends WeftError {
  override name = 'SyncTimeoutError';
}

/** A future was cancelled before it finished. */
export class CancelledError extends WeftError {
  override name = 'CancelledError';
}

/** An inline function cannot be shipped (it uses variables from outside itself). */
export class InlineFunctionError extends WeftError {
  override name = 'InlineFunctionError';
}

/** A peer sent something that is not valid weft protocol. */
export class ProtocolError extends WeftError {
  override name = 'ProtocolError';
}

/** The scheduler refused the handshake (wrong version or token). */
export class HandshakeError extends WeftError {
  override name = 'HandshakeError';
}

/** A connection closed while a request on it was still open. */
export class ConnectionClosedError extends WeftError {
  override name = 'ConnectionClosedError';
}

/** Data that a future refers to is gone and cannot be fetched. */
export class DataLostError extends WeftError {
  override name = 'DataLostError';
}

/** A configuration value (CLI flag, option) is invalid. */
export class ConfigError extends WeftError {
  override name = 'ConfigError';
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof Error) {
    return { name: err.name || 'Error', message: err.message, stack: err.stack };
  }
  let message: string;
  try {
    message = typeof err === 'string' ? err : JSON.stringify(err) ?? String(err);
  } catch {
    message = String(err);
  }
  return { name: 'Error', message: `non-Error value thrown: ${message}` };
}

/** Rebuilds the client-side error for a failed key from the scheduler's report. */
export function remoteError(key: string, remote: SerializedError): Error {
  switch (remote.name) {
    case 'KilledWorkerError':
      return new KilledWorkerError(remote.message);
    case 'NoWorkerError':
      return new NoWorkerError(remote.message);
    case 'CancelledError':
      return new CancelledError(remote.message);
    case 'DataLostError':
      return new DataLostError(remote.message);
  }
  if (remote.failedKey !== undefined && remote.failedKey !== key) {
    return new DependencyError(key, remote.failedKey, remote);
  }
  return new TaskError(key, remote);
}
