/**
 * Recording a run as it goes: its events, written to run storage in
 * batched transactions, and the launcher's heartbeat, which also carries a
 * cancel asked through storage (`weft runs cancel`) back to the run.
 *
 * A batch goes out when 200 events wait, 20 ms after the first of it, and
 * at once for the run's last event. Batches are sent without waiting for
 * the one before (an instance writes them in its writer thread, writer.ts,
 * while the run goes on); `inOrder` keeps them in order, and retries one
 * whose write failed (the database is down) before any later one. How a
 * batch holds its events is the writer's choice (EventBatch): an instance's
 * writes each event's frame as it comes (event-frames.ts).
 */
import { hostname } from 'node:os';
import { encode } from '../protocol/codec.ts';
import type { RunEvent } from '../jobs/events.ts';
import type { RecordedRun, RunStart } from '../jobs/recording.ts';
import { RunStorageError } from './errors.ts';
import { OUTPUTS_TAG, PARENT_RUN_TAG, ROOT_RUN_TAG } from './records.ts';
import type { RunStatus } from './status.ts';
import type { RunStorage } from './storage.ts';

const BATCH_EVENTS = 200;
const BATCH_MS = 20;

export const LAUNCHER = `${hostname()}:${process.pid}`;

/** A batch of a run's events as it gathers, written in one transaction. */
export interface EventBatch {
  /** Events added. */
  readonly count: number;
  add(ev: RunEvent): void;
  /** Writes the batch (once, after its last add); resolves with the run's status after. */
  write(): Promise<RunStatus>;
}

/** Starts a batch of a run's events. */
export type NewBatch = (runId: string) => EventBatch;

/** Batches that hold their events, written by `append` (in order: see inOrder). */
export function arrayBatches(append: (runId: string, events: readonly RunEvent[]) => Promise<RunStatus>): NewBatch {
  return (runId) => {
    const events: RunEvent[] = [];
    return {
      get count() {
        return events.length;
      },
      add: (ev) => void events.push(ev),
      write: () => append(runId, events),
    };
  };
}

/**
 * `append`, with each run's batches written in the order given: a batch
 * starts once the one before it is written. A failed write is tried again
 * (after 0.2 s, doubling to 5 s) until `giveUpMs` has passed since its first
 * try; then it and every later batch of the run fail with its error.
 */
export function inOrder<P>(append: (runId: string, batch: P) => Promise<RunStatus>, opts: { giveUpMs: number; warn?: (m: string) => void }): (runId: string, batch: P) => Promise<RunStatus> {
  const tails = new Map<string, Promise<unknown>>();
  return (runId, batch) => {
    const before = tails.get(runId) ?? Promise.resolve();
    const mine = before.then(async () => {
      const first = Date.now();
      for (let wait = 200; ; wait = Math.min(wait * 2, 5000)) {
        try {
          return await append(runId, batch);
        } catch (err) {
          if (Date.now() - first + wait > opts.giveUpMs) throw err;
          if (wait === 200) opts.warn?.(`run ${runId}: cannot write its events (${(err as Error).message}); trying again`);
          await new Promise((r) => setTimeout(r, wait));
        }
      }
    });
    const tail = mine.catch(() => {
      throw new RunStorageError(`an earlier batch of events of run ${runId} could not be written`);
    });
    tails.set(runId, tail);
    void tail.catch(() => undefined).finally(() => tails.get(runId) === tail && tails.delete(runId));
    return mine;
  };
}

export interface RecorderOptions {
  storage: RunStorage;
  /** How batches gather and are written, in order (see inOrder). Default: arrays, by storage.appendEvents. */
  batches?: NewBatch;
  heartbeatMs: number;
  /** The run is already stored (a queued run the daemon claimed): take it over instead of creating it. */
  claimed?: boolean;
}

export async function startRecording(run: RunStart, cancel: (reason: string) => void, opts: RecorderOptions): Promise<RecordedRun> {
  const { storage } = opts;
  const now = Date.now();
  if (!opts.claimed) {
    const tags = { ...run.tags };
    if (run.parentRunId) tags[PARENT_RUN_TAG] = run.parentRunId;
    if (run.rootRunId) tags[ROOT_RUN_TAG] = run.rootRunId;
    tags[OUTPUTS_TAG] = run.outputsStored ? 'stored' : 'memory';
    await storage.createRun(
      {
        runId: run.runId,
        job: run.job,
        location: run.location,
        tags,
        runConfig: run.runConfig,
        inputValues: Object.keys(run.inputValues).length > 0 ? encode(run.inputValues) : null,
        parentRunId: run.parentRunId,
        rootRunId: run.rootRunId,
        stepKeys: run.stepKeys ? [...run.stepKeys] : null,
        executor: run.executor,
        launcher: LAUNCHER,
        createdAt: now,
      },
      { type: 'RUN_STARTING', runId: run.runId, stepKey: null, timestamp: now, message: `launching run ${run.runId} of job ${run.job} from ${LAUNCHER}` },
    );
  } else await storage.heartbeat(run.runId, LAUNCHER, now);
  const batches = opts.batches ?? arrayBatches(inOrder<readonly RunEvent[]>((id, evs) => storage.appendEvents(id, evs), { giveUpMs: 30_000 }));
  return new Recording(run.runId, storage, batches, cancel, opts.heartbeatMs);
}

class Recording implements RecordedRun {
  /** The batch gathering, from the first event after the last went. */
  private pending: EventBatch | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly sent = new Set<Promise<void>>();
  private readonly beat: NodeJS.Timeout;
  private error: Error | null = null;
  private lost = 0;

  constructor(
    private readonly runId: string,
    private readonly storage: RunStorage,
    private readonly batches: NewBatch,
    private readonly cancel: (reason: string) => void,
    heartbeatMs: number,
  ) {
    this.beat = setInterval(() => void this.heartbeat(), heartbeatMs);
    this.beat.unref();
  }

  event(ev: RunEvent): void {
    const batch = (this.pending ??= this.batches(this.runId));
    batch.add(ev);
    const last = ev.type === 'RUN_SUCCESS' || ev.type === 'RUN_FAILURE' || ev.type === 'RUN_CANCELED';
    if (last || batch.count >= BATCH_EVENTS) this.send();
    else this.timer ??= setTimeout(() => this.send(), BATCH_MS);
  }

  private send(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.pending;
    if (!batch || batch.count === 0) return;
    this.pending = null;
    const p = batch.write().then(
      (status) => {
        if (status === 'CANCELING') this.cancel('canceled through run storage');
      },
      (err: unknown) => {
        this.error ??= err instanceof Error ? err : new Error(String(err));
        this.lost += batch.count;
      },
    );
    this.sent.add(p);
    void p.finally(() => this.sent.delete(p));
  }

  private async heartbeat(): Promise<void> {
    try {
      const status = await this.storage.heartbeat(this.runId, LAUNCHER, Date.now());
      if (status === 'CANCELING') this.cancel('canceled through run storage');
    } catch {
      // The next beat tries again; the run monitor allows several missed ones.
    }
  }

  async finish(): Promise<void> {
    clearInterval(this.beat);
    this.send();
    while (this.sent.size > 0) await Promise.all([...this.sent]);
    if (this.error) throw new RunStorageError(`run ${this.runId}: ${this.lost} event(s) could not be written to ${this.storage.where}, so its record there is incomplete: ${this.error.message}`);
  }
}
