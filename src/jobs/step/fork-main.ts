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
import { event } from '../events.ts';
import { describeReload, refreshUserModule, userCodeGeneration, type ModuleReload } from '../../util/user-modules.ts';
import type { CodeLocationJobs } from '../location.ts';
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
let defs: Promise<CodeLocationJobs | Error> = Promise.resolve(new Error('the code location is not loaded'));
let loadLocation: () => Promise<Record<string, unknown>> = () => Promise.reject(new Error('the code location is not loaded'));
let locationUrl = '';
/** userCodeGeneration() when `defs` was loaded: a warm process loads the code location again once it moved. */
let loadedAt = 0;
/** Reloads noticed since the last step, said in the next step's events. */
let reloads: string[] = [];
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
 * Starts serving steps of the code location at `url`, which `load` imports
 * (the parent's messages are taken meanwhile). A process that imports it
 * unbundled (fork-entry.ts) and serves several steps follows it: edited, it
 * is loaded again before the next step, which says so.
 */
export function startStepProcess(load: () => Promise<Record<string, unknown>>, url: string): void {
  // The parent went away (even kill -9): nothing to report to, stop.
  process.on('disconnect', () => process.exit(0));
  loadLocation = load;
  locationUrl = url;
  defs = loadDefs();
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

function loadDefs(): Promise<CodeLocationJobs | Error> {
  loadedAt = userCodeGeneration();
  return loadLocation()
    .then((mod) => {
      const d = definitionsOf(mod, locationUrl);
      d.location = locationUrl;
      return d;
    })
    .catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
}

/** In a warm process that follows its code location (fork-entry.ts): reloads are said in the next step's events. */
export function noteReload(r: ModuleReload): void {
  reloads.push(describeReload(r, 'code location'));
}

async function runOne({ spec, inputs }: Pending): Promise<void> {
  controller = new AbortController();
  const events = new Batcher<RunEvent>((evs) => send({ t: 'events', evs }));
  refreshUserModule(locationUrl);
  if (loadedAt !== userCodeGeneration()) defs = loadDefs();
  // Loading the new code notices the change: said once it is loaded.
  const loaded = await defs;
  let notes = reloads;
  reloads = [];
  await runStepSession(loaded, spec, await inputs, controller.signal, (ev) => {
    events.push(ev);
    // Said in the step's log, right after its start.
    if (notes.length > 0 && ev.type === 'STEP_START') {
      for (const note of notes) events.push(event('LOG', spec.runId, spec.stepKey, `${note} (step process ${process.pid})`, { level: 'info', attempt: spec.attempt, pid: process.pid }));
      notes = [];
    }
  });
  events.flush();
  send({ t: 'done' });
}
