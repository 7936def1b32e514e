/** Errors of run storage, the output store and re-execution. */
import { WeftError } from '../errors.ts';

/** Run storage cannot be used: a corrupt or foreign database, a server that is down. The message names which. */
export class RunStorageError extends WeftError {
  override name = 'RunStorageError';
}

/** The database was written by a newer weft: its schema is newer than this code knows. */
export class SchemaVersionError extends RunStorageError {
  override name = 'SchemaVersionError';
}

export class RunNotFoundError extends WeftError {
  override name = 'RunNotFoundError';
  constructor(readonly runId: string) {
    super(`no run ${runId} in run storage (weft runs list shows the runs there)`);
  }
}

/** A run cannot be re-executed as asked: the message says why. */
export class ReexecutionError extends WeftError {
  override name = 'ReexecutionError';
}
