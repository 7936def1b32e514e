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
 * The messages of the events every step attempt makes, by kind (1-4), so
 * that a store of events can keep the kind instead of the text and make the
 * text again (stepMessage; runs/event-frames.ts). The factories below
 * write them.
 */
const startMessage = (stepKey: string): string => `started step ${stepKey}`;
const successMessage = (stepKey: string): string => `finished step ${stepKey}`;
const producedMessage = (stepKey: string, output: string): string => `step ${stepKey} produced output ${output}`;
const emittedMessage = (stepKey: string, output: string): string => `step ${stepKey} emitted ${output}`;
const STEP_MESSAGES = [null, startMessage, successMessage, producedMessage, emittedMessage] as const;

/** The message of kind `kind` (stepMessageKind) for a step and output; null for a kind that is none, or without what it needs. */
export function stepMessage(kind: number, stepKey: string | null, output: string | undefined): string | null {
  const make = STEP_MESSAGES[kind];
  if (!make || stepKey === null || (kind >= 3 && output === undefined)) return null;
  return make(stepKey, output ?? '');
}

/** Each kind's message without its step key and output: its length. */
const FIXED_LENGTHS = STEP_MESSAGES.map((make) => (make ? make('', '').length : 0));

/**
 * A step's start, end or output with its message from STEP_MESSAGES. A
 * RunEvent in every way (JSON, msgpack, a structured clone and toEqual see
 * its own fields only: those `event` gives, in the same order); its class
 * says which message it has, so that no one need read the text to know.
 * Made as a class, not a spread: step events are most of a run's, and a
 * fixed shape is quicker to make and to read.
 */
abstract class StepMessageEvent {
  readonly type: RunEventType;
  readonly runId: string;
  readonly stepKey: string;
  readonly timestamp: number;
  readonly message: string;
  readonly attempt: number;
  readonly pid: number;

  constructor(type: RunEventType, runId: string, stepKey: string, message: string, attempt: number, pid: number) {
    this.type = type;
    this.runId = runId;
    this.stepKey = stepKey;
    this.timestamp = Date.now();
    this.message = message;
    this.attempt = attempt;
    this.pid = pid;
  }
}

abstract class OutputMessageEvent extends StepMessageEvent {
  readonly output: string;
  value: unknown;

  constructor(runId: string, stepKey: string, message: string, attempt: number, pid: number, output: string, value: unknown) {
    super('STEP_OUTPUT', runId, stepKey, message, attempt, pid);
    this.output = output;
    this.value = value;
  }
}

class StartEvent extends StepMessageEvent {}
class SuccessEvent extends StepMessageEvent {}
class ProducedEvent extends OutputMessageEvent {}
class EmittedEvent extends OutputMessageEvent {}
/** Each class's message, as its place in STEP_MESSAGES. */
const KINDS = new Map<unknown, number>([
  [StartEvent, 1],
  [SuccessEvent, 2],
  [ProducedEvent, 3],
  [EmittedEvent, 4],
]);

/** A step's start or end, with its message from STEP_MESSAGES. */
export function stepEvent(type: 'STEP_START' | 'STEP_SUCCESS', runId: string, stepKey: string, attempt: number, pid: number): RunEvent {
  return type === 'STEP_START' ? new StartEvent(type, runId, stepKey, startMessage(stepKey), attempt, pid) : new SuccessEvent(type, runId, stepKey, successMessage(stepKey), attempt, pid);
}

/** A step's output (`emitted`: an item of a dynamic output), with its message from STEP_MESSAGES. */
export function outputEvent(runId: string, stepKey: string, attempt: number, pid: number, output: string, value: unknown, emitted = false): RunEvent {
  return emitted ? new EmittedEvent(runId, stepKey, emittedMessage(stepKey, output), attempt, pid, output, value) : new ProducedEvent(runId, stepKey, producedMessage(stepKey, output), attempt, pid, output, value);
}

/**
 * Which of STEP_MESSAGES an event's message is (0: none, or not known to
 * be), known without reading the text: the event was made with it, and its
 * length is still the one it was made with.
 */
export function stepMessageKind(ev: RunEvent): number {
  // One lookup: a plain event's class is Object, in no kind.
  const kind = KINDS.get(ev.constructor);
  if (kind === undefined) return 0;
  const made = (FIXED_LENGTHS[kind] ?? 0) + (ev as StepMessageEvent).stepKey.length + (kind >= 3 ? (ev as OutputMessageEvent).output.length : 0);
  return ev.message.length === made ? kind : 0;
}

/** An event as plain JSON: without output values (large, maybe not JSON at all). */
export function eventForJson(ev: RunEvent): Omit<RunEvent, 'value' | 'bytes'> {
  const { value: _value, bytes: _bytes, ...rest } = ev;
  return rest;
}
