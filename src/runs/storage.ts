/**
 * Run storage: every run of an instance, on every executor, and each run's
 * events in order. One interface; SQLite and PostgreSQL implement it through
 * the same SQL (sql/storage.ts).
 */
import type { RunEvent } from '../jobs/events.ts';
import type { NewRun, RunFilter, RunRecord, StoredEvent } from './records.ts';
import type { RunStatus } from './status.ts';

export interface RunStorage {
  /** Where the runs are, for messages. */
  readonly where: string;
  /** Stores a new run with its first event (RUN_ENQUEUED or RUN_STARTING), which sets its status. */
  createRun(run: NewRun, first: RunEvent): Promise<RunRecord>;
  getRun(runId: string): Promise<RunRecord | null>;
  /** Newest first. */
  listRuns(filter?: RunFilter): Promise<RunRecord[]>;
  /**
   * Appends events to a run's log in one transaction, in order; run events
   * move its status as status.ts allows. Resolves with the status after.
   */
  appendEvents(runId: string, events: readonly RunEvent[]): Promise<RunStatus>;
  /**
   * Stores a run event only if it moves the run's status from one of
   * `only` (default: any status the event may move it from), in one
   * compare-and-set: the daemon claiming a queued run and a cancel cannot
   * both win.
   */
  transition(runId: string, ev: RunEvent, only?: readonly RunStatus[]): Promise<boolean>;
  /** A run's events after `after` (an event id), in order, at most `limit`. */
  events(runId: string, opts?: { after?: number; limit?: number }): Promise<StoredEvent[]>;
  /** The launcher is alive: resolves with the run's status (a launcher sees CANCELING here). */
  heartbeat(runId: string, launcher: string, at: number): Promise<RunStatus | null>;
  /** Runs under way whose launcher's heartbeat is older than `before`. */
  staleRuns(before: number): Promise<RunRecord[]>;
  /** How many runs have each status (the daemon's concurrency, the dashboard). */
  countByStatus(statuses: readonly RunStatus[]): Promise<Map<RunStatus, number>>;
  /** Deletes a run, its tags and its events; false if there was none. */
  deleteRun(runId: string): Promise<boolean>;
  close(): Promise<void>;
}
