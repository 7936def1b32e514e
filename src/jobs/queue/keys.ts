/**
 * Where the queue executor and its workers meet in Redis. BullMQ keeps the
 * queues (under the same prefix); weft keeps, per run:
 *
 *   PREFIX:run:RUN:events            a stream of what its steps report (events, done)
 *   PREFIX:run:RUN:out:STEP:OUTPUT   a step's output (msgpack), read by the steps that take it
 *   PREFIX:run:RUN:input:NAME        the run's job inputs (msgpack)
 *   PREFIX:run:RUN:alive             set while the launching process lives (a heartbeat with a short expiry)
 *   PREFIX:run:RUN:cancel:N|STEP     set when an attempt is cancelled, for a worker that takes it as it is cancelled
 *   PREFIX:cancel                    a channel: "RUN STEP N" stops a running attempt
 *
 * Everything of a run expires: a run whose launcher is gone leaves nothing
 * behind for long.
 */

/** Op tag naming the queue a step goes to. */
export const QUEUE_TAG = 'weft/queue';
/** Job tag: added to the priority of every step of the job's runs (as `dagster-celery/run_priority`). */
export const RUN_PRIORITY_TAG = 'weft/run-priority';

export const DEFAULT_PREFIX = 'weft';
export const DEFAULT_QUEUE = 'weft';

/** How long a run's keys live after their last write. */
export const RUN_TTL_SECONDS = 24 * 3600;
/** The launcher's heartbeat: refreshed every ALIVE_EVERY_MS, gone ALIVE_TTL_SECONDS after its last refresh. */
export const ALIVE_TTL_SECONDS = 30;
export const ALIVE_EVERY_MS = 10_000;
/** The largest step output (msgpack) this path takes: Redis takes strings of up to 512 MB, a stream entry travels whole. */
export const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

export function runKey(prefix: string, runId: string, what: string): string {
  return `${prefix}:run:${runId}:${what}`;
}

export function outputKey(prefix: string, runId: string, stepKey: string, output: string): string {
  return runKey(prefix, runId, `out:${stepKey}:${output}`);
}

export function inputKey(prefix: string, runId: string, name: string): string {
  return runKey(prefix, runId, `input:${name}`);
}

export function cancelChannel(prefix: string): string {
  return `${prefix}:cancel`;
}

/** Set when an attempt is cancelled: a worker that took it just then, before it listened on the cancel channel, finds it. */
export function cancelKey(prefix: string, runId: string, attempt: string): string {
  return runKey(prefix, runId, `cancel:${attempt}`);
}

/** The BullMQ job id of an attempt (no ':' — BullMQ keeps those for itself). */
export function jobId(runId: string, stepKey: string, attempt: number): string {
  return `${runId}|${attempt}|${Buffer.from(stepKey).toString('base64url')}`;
}

/** One attempt of one step, as the event stream and the cancel channel name it. */
export function attemptName(stepKey: string, attempt: number): string {
  return `${attempt}|${stepKey}`;
}
