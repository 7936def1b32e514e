/**
 * A step process of the multiprocess executor (handlers/fork.ts), started
 * from a bundle of the code location and this file (bundle.ts), or, where
 * esbuild is not installed, from fork-entry.ts, which imports them. It runs the
 * steps its parent sends, one at a time, each as a session with the run's
 * coordinator over the IPC channel (see messages.ts): the channel is the
 * step's own, so there is no hello; the step, then its inputs (start), then
 * its events and done. It exits when told to, when its parent goes away, or
 * after one step in isolated mode.
 */
import { definitionsOf } from '../location.ts';
import type { Definitions } from '../repository.ts';
import type { RunEvent } from '../events.ts';
import type { FromStep, ToStep } from './messages.ts';
import { Batcher, runStepSession } from './session.ts';
import type { StepSpec } from './spec.ts';

/** What the parent sends besides the coordinator's messages. */
export type ToForkedStep = ToStep | { t: 'step'; spec: StepSpec } | { t: 'exit' };

interface Pending {
  spec: StepSpec;
  inputs: Promise<Uint8Array[]>;
  give: (inputs: Uint8Array[]) => void;
}

const once = process.argv.includes('once');
const queue: Pending[] = [];
/** Steps whose inputs (start) have not come yet, in the order they were sent. */
const awaitingInputs: Pending[] = [];
let busy = false;
let defs: Promise<Definitions | Error> = Promise.resolve(new Error('the code location is not loaded'));
let controller = new AbortController();

function send(msg: FromStep): void {
  try {
    process.send?.(msg);
  } catch {
    // Logged data that cannot be cloned: the events go without it.
    if (msg.t === 'events') process.send?.({ t: 'events', evs: msg.evs.map((ev) => (ev.data ? { ...ev, data: { note: 'data not serializable' } } : ev)) } satisfies FromStep);
  }
}

/**
 * Starts serving steps of the code location `location` (the module at `url`,
 * imported, or being imported: the parent's messages are taken meanwhile).
 */
export function startStepProcess(location: Record<string, unknown> | Promise<Record<string, unknown>>, url: string): void {
  // The parent went away (even kill -9): nothing to report to, stop.
  process.on('disconnect', () => process.exit(0));
  defs = Promise.resolve(location).then(
    (mod) => {
      const d = definitionsOf(mod, url);
      d.location = url;
      return d;
    },
    (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
  ).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
  process.on('message', (m: ToForkedStep) => {
    if (m.t === 'exit') process.exit(0);
    else if (m.t === 'cancel') controller.abort();
    else if (m.t === 'start') awaitingInputs.shift()?.give(m.inputs);
    else {
      let give: (inputs: Uint8Array[]) => void = () => {};
      const p: Pending = { spec: m.spec, inputs: new Promise((resolve) => (give = resolve)), give: (inputs) => give(inputs) };
      queue.push(p);
      awaitingInputs.push(p);
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

async function runOne({ spec, inputs }: Pending): Promise<void> {
  controller = new AbortController();
  const events = new Batcher<RunEvent>((evs) => send({ t: 'events', evs }));
  await runStepSession(await defs, spec, await inputs, controller.signal, (ev) => events.push(ev));
  events.flush();
  send({ t: 'done' });
}
