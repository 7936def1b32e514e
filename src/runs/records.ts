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

/** What an event's body holds: all but its columns, its run (the row's) and output values (large, maybe not JSON at all). */
type BodyField = Exclude<keyof RunEvent, 'type' | 'runId' | 'stepKey' | 'timestamp' | 'message' | 'value' | 'bytes'>;
/** The fields most events have (each step's start, output and end), written first and straight. */
type HotField = 'output' | 'stored' | 'attempt' | 'pid';
/** The others: logs' and failures', written as JSON (restOfBody). */
type RestField = 'level' | 'data' | 'error' | 'retryInSeconds';
/** Fails to compile when RunEvent gains a field that neither names. */
const EVERY_FIELD: Exclude<BodyField, HotField | RestField> extends never ? true : never = true;
void EVERY_FIELD;

/** An event's hot fields, each where it has its declared type (else it goes with the rest). */
export interface HotFields extends Record<HotField, unknown> {
  output: string | undefined;
  stored: boolean | undefined;
  attempt: number | undefined;
  pid: number | undefined;
}

/** The hot fields of an event that have their declared type. */
export function hotFields(ev: RunEvent): HotFields {
  const { output, stored, attempt, pid } = ev;
  return {
    output: typeof output === 'string' ? output : undefined,
    stored: typeof stored === 'boolean' ? stored : undefined,
    attempt: typeof attempt === 'number' ? attempt : undefined,
    pid: typeof pid === 'number' ? pid : undefined,
  };
}

/**
 * The body's fields after the hot ones, as JSON members each led by a
 * comma (or ''): the RestFields, and a hot field without its declared type.
 */
export function restOfBody(ev: RunEvent): string {
  // Each field read once, by name: this runs for every event, whose shapes vary (each read looks its field up).
  const { output, stored, attempt, pid, level, data, error, retryInSeconds } = ev;
  let out = '';
  if (output !== undefined && typeof output !== 'string') out += `,"output":${jsonOf(output)}`;
  if (stored !== undefined && typeof stored !== 'boolean') out += `,"stored":${jsonOf(stored)}`;
  if (attempt !== undefined && typeof attempt !== 'number') out += `,"attempt":${jsonOf(attempt)}`;
  if (pid !== undefined && typeof pid !== 'number') out += `,"pid":${jsonOf(pid)}`;
  if (level !== undefined) out += `,"level":${jsonOf(level)}`;
  if (data !== undefined) out += `,"data":${jsonOf(data)}`;
  if (error !== undefined) out += `,"error":${jsonOf(error)}`;
  if (retryInSeconds !== undefined) out += `,"retryInSeconds":${jsonOf(retryInSeconds)}`;
  return out;
}

/**
 * An event's body: the JSON of its message, hot fields and the rest.
 * Written field by field, not as JSON.stringify of a copy: it is made for
 * every event, and so it costs half as much and stores half the bytes
 * (bench/README.md, run storage). The run writer thread makes the same
 * from an event's frame (event-frames.ts).
 */
export function eventBody(message: string, hot: HotFields, rest: string): string {
  let body = `{"message":${JSON.stringify(message)}`;
  if (hot.output !== undefined) body += `,"output":${JSON.stringify(hot.output)}`;
  if (hot.stored !== undefined) body += `,"stored":${hot.stored}`;
  if (hot.attempt !== undefined) body += `,"attempt":${Number.isFinite(hot.attempt) ? hot.attempt : 'null'}`;
  if (hot.pid !== undefined) body += `,"pid":${Number.isFinite(hot.pid) ? hot.pid : 'null'}`;
  return `${body}${rest}}`;
}

/** An event ready to store: its columns and its body. Log data that JSON cannot hold is kept as near as it can be (lenient). */
export function eventColumns(ev: RunEvent): EventColumns {
  return { type: ev.type, stepKey: ev.stepKey, timestamp: ev.timestamp, body: eventBody(ev.message, hotFields(ev), restOfBody(ev)) };
}

function jsonOf(v: unknown): string {
  try {
    return JSON.stringify(v) ?? 'null';
  } catch {
    try {
      return JSON.stringify(v, lenient()) ?? 'null';
    } catch (err) {
      return JSON.stringify({ unserializable: (err as Error).message });
    }
  }
}

/** A replacer for what JSON cannot hold: a bigint as its digits, an object met again (a cycle) as "[Circular]". */
function lenient(): (key: string, value: unknown) => unknown {
  const seen = new WeakSet<object>();
  return (_key, value) => {
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'object' && value !== null) {
      if (seen.has(value)) return '[Circular]';
      seen.add(value);
    }
    return value;
  };
}

/** A stored event, from its columns and body (a body that holds the whole event, as early weft wrote, gives the same). */
export function eventOf(runId: string, c: { type: string; stepKey: string | null; timestamp: number }, body: Record<string, unknown>): RunEvent {
  return { type: c.type as RunEventType, runId, stepKey: c.stepKey, timestamp: c.timestamp, ...body } as RunEvent;
}
