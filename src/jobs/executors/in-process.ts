/** Runs the steps of a run one after another in the calling process. */
import type { z } from 'zod';
import { lazySchemas } from '../../util/zod.ts';
import { executor, type ExecutorDefinition } from '../executor.ts';
import { retriesConfig, retriesEnabled, sleep } from './common.ts';

export const inProcessConfig = lazySchemas((z) => z.object({ retries: retriesConfig() }).strict());
export type InProcessConfig = z.infer<ReturnType<typeof inProcessConfig>>;

export const inProcessExecutor: ExecutorDefinition<InProcessConfig> = executor({ name: 'in_process', configSchema: inProcessConfig }, ({ config }) => ({
  async *execute(ctx) {
    const active = ctx.activeExecution();
    const retries = retriesEnabled(config.retries);
    while (!active.isComplete && !ctx.signal.aborted) {
      const ready = active.ready();
      yield* active.drainEvents();
      if (ready.length === 0) {
        const wait = active.nextRetryIn();
        if (wait === null) break;
        await sleep(wait, ctx.signal);
        continue;
      }
      for (const step of ready) {
        for await (const ev of ctx.runStepHere(step, active.attempt(step.key), { retries })) {
          active.handle(ev);
          yield ev;
        }
        if (ctx.signal.aborted) break;
      }
    }
    active.abandon();
  },
}));
