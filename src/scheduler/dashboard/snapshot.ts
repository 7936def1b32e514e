/**
 * What the dashboard's pages receive: the scheduler's figures a few times a
 * second (server-sent events), the recent tasks and the job runs (fetched). Types
 * only: the browser's code imports them too.
 */
import type { WorkerSummary } from '../../protocol/messages.ts';
import type { StateCounts, TaskStatus } from '../task-state.ts';

/** A task that ended: [worker, start (ms since the epoch), duration (ms), group, erred (1) or not (0)]. */
export type StreamEntry = [worker: string, start: number, duration: number, group: string, erred: 0 | 1];

/** Tasks per state at one moment: [time (ms since the epoch), counts]. */
export type HistorySample = [at: number, counts: Partial<Record<TaskStatus, number>>];

export interface GroupView {
  name: string;
  /** Finished (ever) and erred (ever). */
  done: number;
  erred: number;
  /** Its tasks per state now. */
  states: StateCounts;
}

export interface StepView {
  key: string;
  /** The step's last event type (STEP_START, STEP_SUCCESS, ...). */
  state: string;
  start: number | null;
  end: number | null;
  attempt: number;
}

export interface RunEventView {
  type: string;
  stepKey: string | null;
  timestamp: number;
  message: string;
}

export interface RunView {
  runId: string;
  /** From run storage (absent for a cluster executor's run seen only on this cluster). */
  job?: string;
  status?: string;
  executor?: string | null;
  parentRunId?: string | null;
  /** When its first and latest events came (ms since the epoch). */
  first: number;
  last: number;
  steps: StepView[];
  /** Its latest events, oldest first (at most RUN_EVENTS). */
  events: RunEventView[];
}

/** One update of the live pages. The first carries the recent past; each later one what is new since. */
export interface Snapshot {
  now: number;
  workers: WorkerSummary[];
  states: Partial<Record<TaskStatus, number>>;
  groups: GroupView[];
  /** Tasks ended since the last update (at most STREAM_PER_UPDATE, the latest: a sample when more ended). */
  stream: StreamEntry[];
  /** How many ended since the last update, counted whether sent or not. */
  ended: number;
  /** Samples since the last update. */
  history: HistorySample[];
}

/** A row of the tasks page (the latest tasks that ended, newest first). */
export interface TaskRow {
  key: string;
  group: string;
  /** Its state now ('forgotten' once the scheduler let go of it). */
  state: string;
  worker: string;
  end: number;
  duration: number;
  error: string | null;
}

// A sample when more end: at 100,000 tasks a second no one sees single tasks, and 2,000 an update cost the cluster 12% with a page open.
export const STREAM_PER_UPDATE = 250;
export const RUN_EVENTS = 200;

/**
 * The runs pages' view of run storage: every executor's runs, not only the
 * cluster's. The scheduler does not open run storage itself; whoever starts
 * it (weft scheduler) gives it a source (runs/dashboard-source.ts).
 */
export interface RunsSource {
  /** The latest runs, newest first, each with its steps and latest events. */
  recent(limit: number): Promise<RunView[]>;
  /** Queues a re-execution of a failed run from failure (the daemon starts it); its run id. */
  reexecuteFromFailure(runId: string): Promise<string>;
}
