/**
 * Results spilled to disk (see WorkerState.memory): one file per key in a
 * directory of this worker's own under --local-directory, removed when the
 * worker stops. Reads and writes are synchronous: they happen on the
 * worker's main thread between messages, one value at a time, and a
 * spilled value is needed before anything else can go on with it.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class SpillStore {
  /** Made on the first spill: a worker that never spills (most) leaves nothing behind, even if killed. */
  private dir: string | null = null;

  constructor(private readonly localDirectory = tmpdir()) {}

  private path(key: string): string {
    this.dir ??= mkdtempSync(join(this.localDirectory, `weft-worker-${process.pid}-`));
    return join(this.dir, createHash('sha1').update(key).digest('hex'));
  }

  /** Writes a result; one that cannot be written whole (disk full) leaves no partial file behind. */
  write(key: string, bytes: Uint8Array): void {
    const path = this.path(key);
    try {
      writeFileSync(path, bytes);
    } catch (err) {
      rmSync(path, { force: true });
      throw err;
    }
  }

  read(key: string): Buffer {
    return readFileSync(this.path(key));
  }

  drop(key: string): void {
    rmSync(this.path(key), { force: true });
  }

  close(): void {
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
