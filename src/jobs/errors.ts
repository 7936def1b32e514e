/**
 * Errors of the job layer. Like the runtime's, each has a stable `name` and
 * a message that says what to do.
 */
import { WeftError, type SerializedError } from '../errors.ts';

/** A job, graph, op or asset is defined wrongly (caught when it is defined). */
export class DefinitionError extends WeftError {
  override name = 'DefinitionError';
}

/** Run config does not match the schemas; `path` names the place, e.g. `ops.load.config.path`. */
export class RunConfigError extends WeftError {
  override name = 'RunConfigError';
  readonly issues: { path: string; message: string }[];
  constructor(issues: { path: string; message: string }[]) {
    const lines = issues.map((i) => `${i.path}: ${i.message}`);
    super(`invalid run config:${lines.length === 1 ? ` ${lines[0]}` : lines.map((l) => `\n  - ${l}`).join('')}`);
    this.issues = issues;
  }
}

/** The job cannot be rebuilt in another process (for example, it was defined inside a function). */
export class JobReconstructionError extends WeftError {
  override name = 'JobReconstructionError';
}

/**
 * Thrown by an op to ask for another attempt, whatever its retry policy:
 * `throw new RetryRequested({ maxRetries: 3, secondsToWait: 1 })`.
 */
export class RetryRequested extends WeftError {
  override name = 'RetryRequested';
  readonly maxRetries: number;
  readonly secondsToWait: number;
  constructor(opts: { maxRetries?: number; secondsToWait?: number; cause?: unknown } = {}) {
    super(`retry requested${opts.cause instanceof Error ? `: ${opts.cause.message}` : ''}`, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.maxRetries = opts.maxRetries ?? 1;
    this.secondsToWait = opts.secondsToWait ?? 0;
  }
}

/**
 * Whether an error is a RetryRequested, from this copy of weft or another:
 * `weft step` runs from a bundle of its own, while the op throws the class
 * of the `weft` its code location imports.
 */
export function isRetryRequested(err: unknown): err is RetryRequested {
  return err instanceof Error && err.name === 'RetryRequested' && typeof (err as RetryRequested).maxRetries === 'number' && typeof (err as RetryRequested).secondsToWait === 'number';
}

/** A step of a run failed; `remote` is the error as the step raised it (its stack included). */
export class StepFailureError extends WeftError {
  override name = 'StepFailureError';
  readonly stepKey: string;
  readonly remoteName: string;
  readonly remoteStack: string | undefined;
  constructor(stepKey: string, remote: SerializedError) {
    super(`step ${stepKey} failed: ${remote.name}: ${remote.message}`);
    this.stepKey = stepKey;
    this.remoteName = remote.name;
    this.remoteStack = remote.stack;
    if (remote.stack) this.stack = `${this.name}: ${this.message}\n    --- step stack ---\n${remote.stack}`;
  }
}
