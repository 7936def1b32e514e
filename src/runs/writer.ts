/**
 * The run writer: a thread that writes what runs record, their events to
 * run storage and their outputs to the output store, while the runs go on
 * in the launcher's thread. A run of 1,000 in-process steps makes 3,000
 * events and 1,000 output files: written in the launcher's thread they cost
 * more than the steps (bench/README.md, run storage); here the launcher
 * pays for writing each event's frame (event-frames.ts), and the thread
 * does the rest.
 *
 * Events of one run are sent in order, one batch at a time (recorder.ts),
 * and the thread writes each batch in one transaction.
 */
import type { Worker } from 'node:worker_threads';
import { WeftError, type SerializedError } from '../errors.ts';
import { FsOutputStore, OutputStoreError, type OutputRef, type OutputStore } from '../jobs/outputs.ts';
import { WEFT_ROOT } from '../util/self.ts';
import { RunStorageError } from './errors.ts';
import { EventFrames } from './event-frames.ts';
import type { EventBatch } from './recorder.ts';
import type { StorageLocation } from './sql/open.ts';
import type { RunStatus } from './status.ts';

/** What the launcher sends the thread. */
export type WriterRequest =
  | { id: number; t: 'events'; runId: string; /** The events' frames (event-frames.ts), in a buffer of their own, transferred. */ frames: Uint8Array }
  | { id: number; t: 'outputs'; items: { ref: OutputRef; bytes: Uint8Array }[] }
  | { id: number; t: 'close' };

/** What the thread answers: each request once. */
export type WriterReply = { id: number; status?: RunStatus; error?: SerializedError & { kind?: 'storage' | 'output' }; /** outputs: the error of each item that failed, by its index. */ failed?: [number, string][] };

/** Outputs per message to the thread, at most (each waits at most until the event loop turns). */
const OUTPUTS_PER_MESSAGE = 64;

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

export interface WriterInit {
  entry: string;
  storage: StorageLocation;
  outputRoot: string;
}

export class RunWriter {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: WriterReply) => void; reject: (e: Error) => void }>();
  private failed: Error | null = null;

  constructor(private readonly init: Omit<WriterInit, 'entry'>) {}

  /** Started on first use: commands that only read runs never start it. */
  private thread(): Worker {
    if (this.worker) return this.worker;
    // worker_threads loads with the first run recorded: commands that only read runs start quicker without it.
    const { Worker } = process.getBuiltinModule('node:worker_threads');
    const w = new Worker(new URL('util/thread-entry.mjs', WEFT_ROOT), { workerData: { entry: 'runs/writer-thread', ...this.init } satisfies WriterInit });
    w.on('message', (r: WriterReply) => {
      const p = this.waiting.get(r.id);
      if (!p) return;
      this.waiting.delete(r.id);
      if (this.waiting.size === 0) w.unref();
      p.resolve(r);
    });
    const fail = (err: Error): void => {
      this.failed = new RunStorageError(`the run writer thread stopped: ${err.message}`);
      for (const p of this.waiting.values()) p.reject(this.failed);
      this.waiting.clear();
      this.worker = null;
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`it exited with code ${code}`)));
    w.unref();
    this.worker = w;
    return w;
  }

  /**
   * Starts the thread now, ahead of the first write: a command that is
   * about to launch a run lets it boot (its own isolate, better-sqlite3,
   * the database opened: tens of ms) on another core while the job loads.
   */
  start(): void {
    this.thread();
  }

  private request(m: WithoutId<WriterRequest>, transfer?: ArrayBuffer[]): Promise<WriterReply> {
    const id = this.nextId++;
    const w = this.thread();
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      // Held while it has work: a launcher does not exit with events unwritten.
      w.ref();
      w.postMessage({ ...m, id }, transfer ?? []);
    });
  }

  /** A batch of a run's events, written in one transaction by the thread. */
  eventBatch(runId: string): EventBatch {
    return new FramedBatch(runId, (m, transfer) => this.request(m, transfer));
  }

  /** Outputs waiting to go to the thread together: one message for the outputs of many steps. */
  private outputs: { ref: OutputRef; bytes: Uint8Array; done: (err: Error | null) => void }[] = [];
  private outputsSoon: NodeJS.Immediate | null = null;

  putOutput(ref: OutputRef, bytes: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      // A copy of just these bytes, handed over: a view into a larger buffer (a network frame) would be copied whole.
      this.outputs.push({ ref, bytes: new Uint8Array(bytes), done: (err) => (err ? reject(err) : resolve()) });
      if (this.outputs.length >= OUTPUTS_PER_MESSAGE) this.sendOutputs();
      else this.outputsSoon ??= setImmediate(() => this.sendOutputs());
    });
  }

  private sendOutputs(): void {
    if (this.outputsSoon) clearImmediate(this.outputsSoon);
    this.outputsSoon = null;
    const batch = this.outputs;
    this.outputs = [];
    if (batch.length === 0) return;
    const items = batch.map(({ ref, bytes }) => ({ ref, bytes }));
    this.request({ t: 'outputs', items }, items.map((i) => i.bytes.buffer as ArrayBuffer)).then(
      (r) => {
        const failed = new Map(r.failed ?? []);
        batch.forEach((b, i) => b.done(r.error ? rebuild(r.error) : failed.has(i) ? new OutputStoreError(failed.get(i) as string) : null));
      },
      (err: Error) => batch.forEach((b) => b.done(err)),
    );
  }

  async close(): Promise<void> {
    this.sendOutputs();
    if (!this.worker) return;
    const w = this.worker;
    await this.request({ t: 'close' }).catch(() => undefined);
    this.worker = null;
    w.removeAllListeners('exit');
    await w.terminate();
  }
}

/** A batch gathered as frames (event-frames.ts) and sent to the thread whole, its buffer transferred. */
class FramedBatch extends EventFrames implements EventBatch {
  constructor(
    private readonly runId: string,
    private readonly send: (m: WithoutId<WriterRequest>, transfer: ArrayBuffer[]) => Promise<WriterReply>,
  ) {
    super();
  }

  async write(): Promise<RunStatus> {
    const bytes = this.bytes();
    const r = await this.send({ t: 'events', runId: this.runId, frames: bytes }, [bytes.buffer as ArrayBuffer]);
    if (r.error) throw rebuild(r.error);
    return r.status as RunStatus;
  }
}

function rebuild(e: WriterReply['error'] & object): Error {
  const err = e.kind === 'output' ? new OutputStoreError(e.message) : e.kind === 'storage' ? new RunStorageError(e.message) : new WeftError(`${e.name}: ${e.message}`);
  if (e.stack) err.stack = e.stack;
  return err;
}

/** The instance's output store, whose writes go through the run writer. */
export class WrittenOutputStore implements OutputStore {
  readonly description: string;
  readonly directory: string;
  private readonly fs: FsOutputStore;

  constructor(
    root: string,
    private readonly writer: RunWriter,
  ) {
    this.fs = new FsOutputStore(root);
    this.description = this.fs.description;
    this.directory = root;
  }

  put(ref: OutputRef, bytes: Uint8Array): Promise<void> {
    return this.writer.putOutput(ref, bytes);
  }

  get(ref: OutputRef): Promise<Uint8Array | null> {
    return this.fs.get(ref);
  }

  has(ref: OutputRef): Promise<boolean> {
    return this.fs.has(ref);
  }

  deleteRun(runId: string): Promise<void> {
    return this.fs.deleteRun(runId);
  }
}

