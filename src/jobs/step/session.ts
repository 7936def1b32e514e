/**
 * One attempt of one step in a step process, whatever carries its messages:
 * rebuilds the plan from the code location, decodes the inputs, runs the
 * attempt and sends its events as they happen, outputs as msgpack bytes.
 * `weft step` (WebSocket) and the multiprocess executor's step processes
 * (IPC) both run steps through here.
 */
import { serializeError } from '../../errors.ts';
import { event, type RunEvent } from '../events.ts';
import type { CodeLocationJobs } from '../location.ts';
import { runStepAttempt } from '../step-runner.ts';
import { decodeValue, encodeValue } from '../values.ts';
import { rebuildPlan } from './rebuild.ts';
import type { StepSpec } from './spec.ts';

/**
 * Runs the attempt; `send` gets every event (a step that cannot start gets a
 * STEP_FAILURE saying why). `defs` is the loaded code location, or the error
 * that loading it gave.
 */
export async function runStepSession(defs: CodeLocationJobs | Error, spec: StepSpec, inputs: Uint8Array[], signal: AbortSignal, send: (ev: RunEvent) => void): Promise<void> {
  const { runId, stepKey, attempt } = spec;
  try {
    if (defs instanceof Error) throw defs;
    const step = rebuildPlan(defs, spec).step(stepKey);
    const values = await Promise.all(inputs.map((b) => decodeValue(b)));
    for await (const ev of runStepAttempt({ runId, step, inputs: values, attempt, retries: spec.retries, signal })) {
      if (ev.type !== 'STEP_OUTPUT') {
        send(ev);
        continue;
      }
      const { value, ...rest } = ev;
      let bytes: Uint8Array;
      try {
        if (typeof value === 'function' || typeof value === 'symbol') throw new TypeError(`it is a ${typeof value}`);
        bytes = await encodeValue(value);
      } catch (err) {
        const error = serializeError(new TypeError(`output ${ev.output} of step ${stepKey} cannot be sent to another process: ${(err as Error).message}`));
        send(event('STEP_FAILURE', runId, stepKey, `step ${stepKey} failed: ${error.message}`, { attempt, pid: process.pid, error }));
        return;
      }
      send({ ...rest, bytes });
    }
  } catch (err) {
    send(event('STEP_FAILURE', runId, stepKey, `step ${stepKey} could not start in process ${process.pid}: ${(err as Error).message}`, { attempt, pid: process.pid, error: serializeError(err) }));
  }
}

/**
 * Collects what a step sends during one turn of the event loop and passes
 * it on in one message: a fast step's whole attempt is one message.
 */
export class Batcher<T> {
  private items: T[] = [];

  constructor(private readonly flushTo: (items: T[]) => void) {}

  push(item: T): void {
    this.items.push(item);
    if (this.items.length === 1) setImmediate(() => this.flush());
  }

  flush(): void {
    if (this.items.length === 0) return;
    const items = this.items;
    this.items = [];
    this.flushTo(items);
  }
}
