/**
 * A step process of the multiprocess executor (handlers/fork.ts), started
 * from a bundle of the code location and this file (bundle.ts). It runs the
 * steps its parent sends, one at a time, each as a session with the run's
 * coordinator over the IPC channel: hello, start, events, done (see
 * messages.ts). It exits when told to, when its parent goes away, or after
 * one step in isolated mode.
 */
import { hostname } from 'node:os';
import { definitionsOf } from '../location.ts';
import type { Definitions } from '../repository.ts';
import type { RunEvent } from '../events.ts';
import type { FromStep, ToStep } from './messages.ts';
import { Batcher, runStepSession } from './session.ts';
import type { StepSpec } from './spec.ts';

/** What the parent sends besides the coordinator's messages. */
export type ToForkedStep = ToStep | { t: 'step'; spec: StepSpec; token: string } | { t: 'exit' };

interface Pending {
  spec: StepSpec;
  token: string;
}

const once = process.argv[2] === 'once';
const queue: Pending[] = [];
let busy = false;
let defs: Definitions | Error = new Error('the code location is not loaded');
let controller = new AbortController();
let started: ((inputs: Uint8Array[]) => void) | null = null;

function send(msg: FromStep): void {
  try {
    process.send?.(msg);
  } catch {
    // Logged data that cannot be cloned: the events go without it.
    if (msg.t === 'events') process.send?.({ t: 'events', evs: msg.evs.map((ev) => (ev.data ? { ...ev, data: { note: 'data not serializable' } } : ev)) } satisfies FromStep);
  }
}

/** Starts serving steps of the code location `location` (the imported module at `url`). */
export function startStepProcess(location: Record<string, unknown>, url: string): void {
  // The parent went away (even kill -9): nothing to report to, stop.
  process.on('disconnect', () => process.exit(0));
  try {
    defs = definitionsOf(location, url);
    defs.location = url;
  } catch (err) {
    defs = err instanceof Error ? err : new Error(String(err));
  }
  process.on('message', (m: ToForkedStep) => {
    if (m.t === 'exit') process.exit(0);
    else if (m.t === 'cancel') controller.abort();
    else if (m.t === 'start') started?.(m.inputs);
    else {
      queue.push(m);
      void drain();
    }
  });
}

async function drain(): Promise<void> {
  if (busy) return;
  busy = true;
  while (queue.length > 0) {
    await runOne(queue.shift() as Pending);
    if (once) {
      // One step per process: leave once the parent has the last message.
      process.disconnect?.();
      return;
    }
  }
  busy = false;
}

async function runOne({ spec, token }: Pending): Promise<void> {
  controller = new AbortController();
  const inputs = new Promise<Uint8Array[]>((resolve) => (started = resolve));
  send({ t: 'hello', runId: spec.runId, stepKey: spec.stepKey, attempt: spec.attempt, token, pid: process.pid, host: hostname() });
  const events = new Batcher<RunEvent>((evs) => send({ t: 'events', evs }));
  await runStepSession(defs, spec, await inputs, controller.signal, (ev) => events.push(ev));
  started = null;
  events.flush();
  send({ t: 'done' });
}
