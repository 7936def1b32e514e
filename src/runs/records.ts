/**
 * What run storage holds: runs (enough to launch one again with nothing
 * else: job, code location, run config, inputs, lineage) and each run's
 * events in order, without output values (those live in the output store).
 */
import type { RunConfig } from '../jobs/definitions.ts';
import type { RunEvent, RunEventType } from '../jobs/events.ts';
import type { RunStatus } from './status.ts';

/** Lineage tags, as Dagster's: the run this one re-executes, and the first run of the line. */
export const PARENT_RUN_TAG = 'weft/parent_run_id';
export const ROOT_RUN_TAG = 'weft/root_run_id';
/** Where a run's outputs went: `stored` (its output store), or `memory` (not kept: it cannot be re-executed). */
export const OUTPUTS_TAG = 'weft/outputs';

export interface RunRecord {
  runId: string;
  job: string;
  /** file: URL of the code location whose Definitions hold the job (null: a job defined in a script, not rebuildable). */
  location: string | null;
  status: RunStatus;
  tags: Record<string, string>;
  runConfig: RunConfig;
  /** The job's input values, msgpack (a job made from a graph with inputs), or null. */
  inputValues: Uint8Array | null;
  parentRunId: string | null;
  rootRunId: string | null;
  /** The steps this run executes (a re-execution), or null for all of them. */
  stepKeys: string[] | null;
  /** The executor's name, as the run started. */
  executor: string | null;
  /** Who launched the run (host and pid), for the run monitor's messages. */
  launcher: string | null;
  /** Milliseconds since the epoch. */
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  endedAt: number | null;
  /** The launcher's last sign of life (null: not started, or not watched). */
  heartbeatAt: number | null;
}

/** A new run, as given to storage: its status comes from its first event. */
export type NewRun = Omit<RunRecord, 'status' | 'updatedAt' | 'startedAt' | 'endedAt' | 'heartbeatAt'>;

export interface RunFilter {
  statuses?: readonly RunStatus[];
  job?: string;
  /** Runs with all of these tags. */
  tags?: Readonly<Record<string, string>>;
  runIds?: readonly string[];
  /** Runs whose id starts with this (a user's short form of an id). */
  runIdPrefix?: string;
  /** Newest first; at most this many (default 100). */
  limit?: number;
  /** Runs created before this run (for the next page). */
  before?: string;
}

/** An event as stored: its place in the run's log, and the event without output values. */
export interface StoredEvent {
  /** Increasing within a run (and across runs in one storage). */
  id: number;
  event: RunEvent;
}

/** The parts of an event worth a column: what queries filter on. */
export interface EventColumns {
  type: RunEventType;
  stepKey: string | null;
  timestamp: number;
  /** The event as JSON, without output values. */
  body: string;
}

/** An event ready to store: JSON without `value` and `bytes`; log data that JSON cannot hold is kept as text. */
export function eventColumns(ev: RunEvent): EventColumns {
  // Most events carry no value: they are written as they are, without a copy.
  const rest = ev.value === undefined && ev.bytes === undefined ? ev : withoutValue(ev);
  let body: string;
  try {
    body = JSON.stringify(rest);
  } catch {
    body = JSON.stringify({ ...rest, data: rest.data ? { unserializable: String(rest.data) } : undefined });
  }
  return { type: ev.type, stepKey: ev.stepKey, timestamp: ev.timestamp, body };
}

function withoutValue(ev: RunEvent): RunEvent {
  const { value: _v, bytes: _b, ...rest } = ev;
  return rest;
}
