/**
 * Recording a run as it goes: its events, written to run storage in
 * batched transactions, and the launcher's heartbeat, which also carries a
 * cancel asked through storage (`weft runs cancel`) back to the run.
 *
 * Events are written when 500 are waiting or 50 ms after the first of a
 * batch, and at once for the run's last one: a run of 1,000 in-process
 * steps writes a few dozen transactions instead of 3,000. A write that fails
 * (the database is down) keeps its events and tries again; only `finish`
 * gives up, after a last attempt, with an error saying how many were lost.
 */
import { hostname } from 'node:os';
import { encode } from '../protocol/codec.ts';
import type { RunEvent } from '../jobs/events.ts';
import type { RecordedRun, RunStart } from '../jobs/recording.ts';
import { RunStorageError } from './errors.ts';
import { PARENT_RUN_TAG, ROOT_RUN_TAG } from './records.ts';
import type { RunStorage } from './storage.ts';

const BATCH_EVENTS = 500;
const BATCH_MS = 50;
const RETRY_MS = 1000;
/** How long `finish` keeps trying to write the last events while storage is down. */
const FINISH_TRIES = 5;

export const LAUNCHER = `${hostname()}:${process.pid}`;

export interface RecorderOptions {
  storage: RunStorage;
  heartbeatMs: number;
  /** The run is already stored (a queued run the daemon claimed): take it over instead of creating it. */
  claimed?: boolean;
  /** Where writes that failed and will be tried again are told (the launcher's log). */
  warn?: (message: string) => void;
}

export async function startRecording(run: RunStart, cancel: (reason: string) => void, opts: RecorderOptions): Promise<RecordedRun> {
  const { storage } = opts;
  const now = Date.now();
  if (!opts.claimed) {
    const tags = { ...run.tags };
    if (run.parentRunId) tags[PARENT_RUN_TAG] = run.parentRunId;
    if (run.rootRunId) tags[ROOT_RUN_TAG] = run.rootRunId;
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
  return new Recording(run.runId, storage, cancel, opts);
}

class Recording implements RecordedRun {
  private pending: RunEvent[] = [];
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> | null = null;
  private readonly beat: NodeJS.Timeout;
  private failures = 0;
  private finished = false;

  constructor(
    private readonly runId: string,
    private readonly storage: RunStorage,
    private readonly cancel: (reason: string) => void,
    private readonly opts: RecorderOptions,
  ) {
    this.beat = setInterval(() => void this.heartbeat(), opts.heartbeatMs);
    this.beat.unref();
  }

  event(ev: RunEvent): void {
    this.pending.push(ev);
    const last = ev.type === 'RUN_SUCCESS' || ev.type === 'RUN_FAILURE' || ev.type === 'RUN_CANCELED';
    if (last || this.pending.length >= BATCH_EVENTS) this.flushSoon(0);
    else this.flushSoon(BATCH_MS);
  }

  private flushSoon(ms: number): void {
    if (this.writing) return;
    if (this.timer && ms > 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, ms);
  }

  /** Writes what is waiting, one batch at a time; events that arrive meanwhile go in the next. */
  private flush(): Promise<void> {
    if (this.writing) return this.writing;
    if (this.pending.length === 0) return Promise.resolve();
    const batch = this.pending;
    this.pending = [];
    this.writing = this.storage.appendEvents(this.runId, batch).then(
      (status) => {
        this.failures = 0;
        this.writing = null;
        if (status === 'CANCELING') this.cancel('canceled through run storage');
        if (this.pending.length > 0 && !this.finished) this.flushSoon(this.pending.length >= BATCH_EVENTS ? 0 : BATCH_MS);
      },
      (err: unknown) => {
        this.writing = null;
        this.pending = batch.concat(this.pending);
        this.failures++;
        if (this.failures === 1) this.opts.warn?.(`run ${this.runId}: cannot write its events to ${this.storage.where} (${(err as Error).message}); keeping them and trying again`);
        if (!this.finished) this.flushSoon(RETRY_MS);
      },
    );
    return this.writing;
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
    this.finished = true;
    clearInterval(this.beat);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (let i = 0; i < FINISH_TRIES; i++) {
      if (this.writing) await this.writing;
      await this.flush();
      if (this.pending.length === 0 && !this.writing) return;
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
    throw new RunStorageError(`run ${this.runId}: ${this.pending.length} event(s) could not be written to ${this.storage.where}; its record there is incomplete`);
  }
}
