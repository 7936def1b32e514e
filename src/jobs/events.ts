/**
 * Events of a run: what executors yield and results collect, one per thing
 * that happened, in order per step.
 */
import type { SerializedError } from '../errors.ts';

/** Every event type. A type's place here is its code in the frames a launcher sends its run writer thread (runs/event-frames.ts), which never leave the process. */
export const RUN_EVENT_TYPES = [
  'RUN_ENQUEUED',
  'RUN_STARTING',
  'RUN_START',
  'RUN_CANCELING',
  'RUN_SUCCESS',
  'RUN_FAILURE',
  'RUN_CANCELED',
  'STEP_START',
  'STEP_OUTPUT',
  'STEP_SUCCESS',
  'STEP_FAILURE',
  'STEP_SKIPPED',
  'STEP_UP_FOR_RETRY',
  'STEP_RESTARTED',
  'ENGINE_EVENT',
  'LOG',
] as const;

export type RunEventType = (typeof RUN_EVENT_TYPES)[number];

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface RunEvent {
  type: RunEventType;
  runId: string;
  /** The step, for step events and logs from ops; null for run and engine events. */
  stepKey: string | null;
  /** Milliseconds since the epoch. */
  timestamp: number;
  message: string;
  /** LOG events: the level; data logged with the message. */
  level?: LogLevel;
  data?: Record<string, unknown>;
  /** STEP_FAILURE, STEP_UP_FOR_RETRY, RUN_FAILURE: the error, with its stack. */
  error?: SerializedError;
  /** STEP_OUTPUT: the output's name and value. */
  output?: string;
  value?: unknown;
  /** STEP_OUTPUT from another process: the value as msgpack, passed on to other processes as is. */
  bytes?: Uint8Array;
  /** STEP_OUTPUT: the process that ran the step has written the output to the run's output store. */
  stored?: boolean;
  /** The attempt the event belongs to (0 = first). */
  attempt?: number;
  /** STEP_UP_FOR_RETRY: seconds until the next attempt. */
  retryInSeconds?: number;
  /** The process that ran the step. */
  pid?: number;
}

export function event(type: RunEventType, runId: string, stepKey: string | null, message: string, extra: Partial<RunEvent> = {}): RunEvent {
  return { type, runId, stepKey, timestamp: Date.now(), message, ...extra };
}

/**
 * `event` for the events every step attempt makes (its start and end, each
 * output), as one literal in the order `event` gives. They are most of a
 * run's events: a literal is quicker to make than a spread, and its few
 * shapes quicker to read for whatever handles the events next.
 */
export function stepEvent(type: 'STEP_START' | 'STEP_SUCCESS' | 'STEP_RESTARTED', runId: string, stepKey: string, message: string, attempt: number, pid: number): RunEvent {
  return { type, runId, stepKey, timestamp: Date.now(), message, attempt, pid };
}

/** A step's output, as stepEvent makes the others. */
export function outputEvent(runId: string, stepKey: string, message: string, attempt: number, pid: number, output: string, value: unknown): RunEvent {
  return { type: 'STEP_OUTPUT', runId, stepKey, timestamp: Date.now(), message, attempt, pid, output, value };
}

/** An event as plain JSON: without output values (large, maybe not JSON at all). */
export function eventForJson(ev: RunEvent): Omit<RunEvent, 'value' | 'bytes'> {
  const { value: _value, bytes: _bytes, ...rest } = ev;
  return rest;
}
