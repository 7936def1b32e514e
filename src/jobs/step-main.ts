/**
 * A step process of the multiprocess executor. It gets the code location
 * (bundled with it, see step-bundle.ts), says `ready`, then runs the steps it is sent,
 * one at a time, streaming each step's events back over the IPC channel
 * (outputs as msgpack bytes). It exits when told to, when its parent goes
 * away, or after one step in isolated mode.
 */
import { serializeError } from '../errors.ts';
import type { RunConfig } from './definitions.ts';
import { event, type RunEvent } from './events.ts';
import { definitionsOf } from './location.ts';
import type { Definitions } from './repository.ts';
import { buildPlan } from './plan.ts';
import { resolveOpConfig } from './run-config.ts';
import { decodeValue, encodeValue } from './values.ts';
import { runStepAttempt } from './step-runner.ts';

export interface RunStepMsg {
  t: 'run';
  runId: string;
  jobName: string;
  stepKey: string;
  attempt: number;
  retries: boolean;
  runConfig: RunConfig;
  inputs: Uint8Array[];
}

export type ToStepProcess = RunStepMsg | { t: 'cancel' } | { t: 'exit' };
type Single = { t: 'ready' } | { t: 'load-error'; error: ReturnType<typeof serializeError> } | { t: 'event'; ev: RunEvent } | { t: 'done' };
/** Messages leave in batches: what one turn of the event loop produced (a fast step: all of it). */
export type FromStepProcess = { t: 'batch'; msgs: Single[] };

let outgoing: Single[] = [];

function send(m: Single): void {
  outgoing.push(m);
  if (outgoing.length === 1) setImmediate(flushOutgoing);
}

function flushOutgoing(): void {
  if (outgoing.length === 0) return;
  const msgs = outgoing;
  outgoing = [];
  try {
    process.send?.({ t: 'batch', msgs } satisfies FromStepProcess);
  } catch {
    // Logged data that cannot be cloned: send the events without it.
    process.send?.({ t: 'batch', msgs: msgs.map((m) => (m.t === 'event' && m.ev.data ? { t: 'event', ev: { ...m.ev, data: { note: 'data not serializable' } } } : m)) } satisfies FromStepProcess);
  }
}
const once = process.argv[2] === 'once';
let controller = new AbortController();
const queue: RunStepMsg[] = [];
let busy = false;
let defs: Definitions | null = null;

/** Starts serving steps of the code location `location` (the imported module). */
export function startStepProcess(location: Record<string, unknown>, url: string): void {
  // The parent went away (even kill -9): nothing to report to, stop.
  process.on('disconnect', () => process.exit(0));
  try {
    defs = definitionsOf(location, url);
    defs.location = url;
  } catch (err) {
    send({ t: 'load-error', error: serializeError(err) });
    flushOutgoing();
    process.disconnect?.();
    return;
  }
  process.on('message', (m: ToStepProcess) => {
    if (m.t === 'exit') process.exit(0);
    else if (m.t === 'cancel') controller.abort();
    else {
      queue.push(m);
      void drain();
    }
  });
  send({ t: 'ready' });
}

async function drain(): Promise<void> {
  if (busy) return;
  busy = true;
  while (queue.length > 0) {
    await runOne(queue.shift() as RunStepMsg);
    if (once) {
      // One step per process: leave once the parent has the last message.
      flushOutgoing();
      process.disconnect?.();
      return;
    }
  }
  busy = false;
}

async function runOne(m: RunStepMsg): Promise<void> {
  controller = new AbortController();
  try {
    if (!defs) throw new Error('the code location is not loaded');
    const job = defs.getJob(m.jobName);
    const { opConfig, issues } = resolveOpConfig(job, m.runConfig);
    if (issues.length > 0) throw new Error(`invalid op config: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
    const step = buildPlan(m.runId, job, opConfig).step(m.stepKey);
    const inputs = await Promise.all(m.inputs.map((b) => decodeValue(b)));
    for await (const ev of runStepAttempt({ runId: m.runId, step, inputs, attempt: m.attempt, retries: m.retries, signal: controller.signal })) {
      if (ev.type === 'STEP_OUTPUT') {
        const { value, ...rest } = ev;
        let bytes: Uint8Array;
        try {
          if (typeof value === 'function' || typeof value === 'symbol') throw new TypeError(`it is a ${typeof value}`);
          bytes = await encodeValue(value);
        } catch (err) {
          const error = serializeError(new TypeError(`output ${ev.output} of step ${m.stepKey} cannot be sent to another process: ${(err as Error).message}`));
          send({ t: 'event', ev: event('STEP_FAILURE', m.runId, m.stepKey, `step ${m.stepKey} failed: ${error.message}`, { attempt: m.attempt, pid: process.pid, error }) });
          break;
        }
        send({ t: 'event', ev: { ...rest, bytes } });
      } else {
        send({ t: 'event', ev });
      }
    }
  } catch (err) {
    send({ t: 'event', ev: event('STEP_FAILURE', m.runId, m.stepKey, `step ${m.stepKey} could not start in process ${process.pid}: ${(err as Error).message}`, { attempt: m.attempt, pid: process.pid, error: serializeError(err) }) });
  }
  send({ t: 'done' });
}
