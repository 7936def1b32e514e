/**
 * Output stores (Dagster's IO managers): where the outputs of a run's steps
 * are kept so that they outlive the run. A re-execution loads the inputs of
 * its first steps from the outputs of the runs before it. Values are stored
 * as weft's msgpack, the bytes that move between processes anyway.
 *
 * The default store of a run launched with an instance is the filesystem
 * (FsOutputStore); `executeInProcess` keeps values in memory unless given
 * one. Any other store implements OutputStore.
 */
import { mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WeftError } from '../errors.ts';

/** An output of a step of a run. */
export interface OutputRef {
  runId: string;
  stepKey: string;
  output: string;
}

export interface OutputStore {
  /** For messages: what and where. */
  readonly description: string;
  /**
   * A directory that processes on this machine (or with it mounted) can read
   * and write the store through: cluster workers write their steps' outputs
   * there themselves. Null when only the launcher reaches the store.
   */
  readonly directory: string | null;
  /** Stores the bytes of an output; a crash midway leaves no half-written output. */
  put(ref: OutputRef, bytes: Uint8Array): Promise<void>;
  /** The bytes of an output, or null if the store does not hold it. */
  get(ref: OutputRef): Promise<Uint8Array | null>;
  has(ref: OutputRef): Promise<boolean>;
  /** Forgets every output of a run. */
  deleteRun(runId: string): Promise<void>;
}

/** An output store failed to store or load an output. */
export class OutputStoreError extends WeftError {
  override name = 'OutputStoreError';
}

let written = 0;
/** A name beside `file` that no other write uses: this process's, this write's, and a random part for another thread of it. */
function temporaryName(file: string): string {
  return `${file}.${process.pid}-${(++written).toString(36)}-${Math.random().toString(36).slice(2, 8)}.tmp`;
}

/**
 * Outputs as files, `ROOT/RUN/STEP/OUTPUT`, each written to a temporary
 * name and renamed into place. Names are percent-encoded: a step key holds
 * dots and brackets, never a path of its own.
 */
export class FsOutputStore implements OutputStore {
  readonly description: string;
  readonly directory: string;

  constructor(root: string) {
    this.directory = root;
    this.description = `the output store in ${root}`;
  }

  path(ref: OutputRef): string {
    return join(this.directory, part(ref.runId), part(ref.stepKey), part(ref.output));
  }

  async put(ref: OutputRef, bytes: Uint8Array): Promise<void> {
    const file = this.path(ref);
    const tmp = temporaryName(file);
    try {
      await mkdir(join(this.directory, part(ref.runId), part(ref.stepKey)), { recursive: true });
      await writeFile(tmp, bytes);
      await rename(tmp, file);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw new OutputStoreError(`cannot store output ${ref.output} of step ${ref.stepKey} of run ${ref.runId} in ${file}: ${(err as Error).message}`);
    }
  }

  /**
   * put, blocking: for a thread that does nothing else (the run writer,
   * runs/writer.ts), where three system calls in a row cost less than three
   * trips through libuv's thread pool.
   */
  putSync(ref: OutputRef, bytes: Uint8Array): void {
    const file = this.path(ref);
    const tmp = temporaryName(file);
    try {
      mkdirSync(join(this.directory, part(ref.runId), part(ref.stepKey)), { recursive: true });
      writeFileSync(tmp, bytes);
      renameSync(tmp, file);
    } catch (err) {
      try {
        unlinkSync(tmp);
      } catch {
        // It was never written.
      }
      throw new OutputStoreError(`cannot store output ${ref.output} of step ${ref.stepKey} of run ${ref.runId} in ${file}: ${(err as Error).message}`);
    }
  }

  async get(ref: OutputRef): Promise<Uint8Array | null> {
    try {
      // Read at once: a re-execution reads the few outputs its first steps take before any starts, and a round trip through libuv's pool costs more than the read.
      return readFileSync(this.path(ref));
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ENOENT') return null;
      throw new OutputStoreError(`cannot read output ${ref.output} of step ${ref.stepKey} of run ${ref.runId}: ${(err as Error).message}`);
    }
  }

  async has(ref: OutputRef): Promise<boolean> {
    try {
      return (await stat(this.path(ref))).isFile();
    } catch {
      return false;
    }
  }

  async deleteRun(runId: string): Promise<void> {
    await rm(join(this.directory, part(runId)), { recursive: true, force: true });
  }
}

/** A file name for any string: no separators, no `.` or `..` of its own. */
function part(s: string): string {
  const enc = encodeURIComponent(s).replace(/\*/g, '%2A');
  return enc === '.' || enc === '..' || enc === '' ? `%${enc}` : enc;
}
