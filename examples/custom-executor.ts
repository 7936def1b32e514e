/**
 * A custom executor: runs the ready steps of a run concurrently in this
 * process, at most `maxConcurrent` at a time. Good for ops that mostly wait
 * (HTTP calls, queries); weft's in-process executor runs steps one by one.
 */
import { z } from 'zod';
import { executor, type ExecutionContext, type PlannedStep, type RunEvent } from '../src/index.ts';

const configSchema = z.object({ maxConcurrent: z.number().int().min(1).default(4) }).strict();

export const concurrentExecutor = executor({ name: 'concurrent_in_process', configSchema }, ({ config }) => ({
  async *execute(ctx: ExecutionContext): AsyncGenerator<RunEvent> {
    // ActiveExecution does the bookkeeping: ready steps, skips, retries.
    const active = ctx.activeExecution();
    const queue: PlannedStep[] = [];
    // Events of the steps running now, merged into one stream.
    const inbox: RunEvent[] = [];
    let running = 0;
    let wake: () => void = () => {};

    const start = async (step: PlannedStep): Promise<void> => {
      running++;
      try {
        for await (const ev of ctx.runStepHere(step, active.attempt(step.key))) {
          inbox.push(ev);
          wake();
        }
      } finally {
        running--;
        wake();
      }
    };

    while (!ctx.signal.aborted) {
      queue.push(...active.ready());
      yield* active.drainEvents();
      while (running < config.maxConcurrent && queue.length > 0) void start(queue.shift() as PlannedStep);
      if (running === 0 && inbox.length === 0) {
        const retryIn = active.nextRetryIn();
        if (retryIn === null) break; // nothing running, nothing to retry: done
        await new Promise((resolve) => setTimeout(resolve, retryIn));
        continue;
      }
      if (inbox.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      for (const ev of inbox.splice(0)) {
        active.handle(ev); // tell the bookkeeping first...
        yield ev; // ...then the run (which keeps outputs for downstream steps)
      }
    }
  },
}));
