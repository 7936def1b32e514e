/**
 * What a step process and the run's coordinator say to each other, over a
 * WebSocket (`weft step`, msgpack frames) or a forked process's IPC channel
 * (the multiprocess executor): the same messages either way, except that a
 * handler's own channel is bound to its step when attached, with no hello.
 *
 *   step -> coordinator   hello (run, step, attempt, token)
 *   coordinator -> step   start (the step's inputs, msgpack each)
 *   step -> coordinator   events ... (batched; outputs as msgpack bytes)
 *   step -> coordinator   done
 *   coordinator -> step   cancel (any time after start)
 *
 * Types only: step processes load this without zod; the coordinator checks
 * what arrives with the schemas in delegating/coordinator.ts.
 */
import type { RunEvent } from '../events.ts';

/** The largest frame either side takes (a step's inputs, a batch of its events with outputs): 1 GiB. */
export const MAX_STEP_FRAME = 1024 * 1024 * 1024;

export interface StepHello {
  t: 'hello';
  runId: string;
  stepKey: string;
  attempt: number;
  token: string;
  pid: number;
  host: string;
}

export type FromStep = StepHello | { t: 'events'; evs: RunEvent[] } | { t: 'done' };
export type ToStep = { t: 'start'; inputs: Uint8Array[] } | { t: 'cancel' };
