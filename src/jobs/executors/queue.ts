/**
 * Runs each step through a queue on Redis (BullMQ: Celery's role in
 * Dagster's celery_executor): steps wait in named queues, by priority, until
 * a long-lived `weft queue-worker` takes them; the broker holds the work
 * while workers are busy or absent. On the step-delegating loop with the
 * queue handler (handlers/queue.ts).
 *
 *   job({ name: 'etl', executorDef: queueExecutor.configured({ redis: 'redis://127.0.0.1:6379/0' }) }, ...)
 */
import type { ExecutorDefinition } from '../executor.ts';
import { stepDelegatingExecutor } from '../delegating/executor.ts';
import { queueConfig, type QueueConfig } from '../queue/config.ts';
import { RUN_PRIORITY_TAG } from '../queue/keys.ts';
import { DefinitionError } from '../errors.ts';

export { queueConfig, type QueueConfig } from '../queue/config.ts';

export const queueExecutor: ExecutorDefinition<QueueConfig> = stepDelegatingExecutor({
  name: 'queue',
  configSchema: queueConfig,
  // The workers' own concurrency bounds the work, as Celery's does.
  defaultMaxConcurrent: 1024,
  // The handler (and the Redis client) load when a run starts.
  handler: async (config, ctx) => {
    const tag = ctx.job.tags[RUN_PRIORITY_TAG];
    const runPriority = tag === undefined ? 0 : Number(tag);
    if (!Number.isFinite(runPriority)) throw new DefinitionError(`job ${ctx.job.name}: tag ${RUN_PRIORITY_TAG} must be a number (got ${JSON.stringify(tag)})`);
    const { queueHandler } = await import('../handlers/queue.ts');
    return queueHandler(config, runPriority, ctx.inputValues);
  },
});
