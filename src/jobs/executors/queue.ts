/**
 * Runs each step through a queue on Redis (BullMQ: Celery's role in
 * Dagster's celery_executor): steps wait in named queues, by priority, until
 * a long-lived `weft queue-worker` takes them; the broker holds the work
 * while workers are busy or absent. On the step-delegating loop with the
 * queue handler (handlers/queue.ts).
 *
 *   job({ name: 'etl', executorDef: queueExecutor.configured({ redis: 'redis://127.0.0.1:6379/0' }) }, ...)
 */
import type { z } from 'zod';
import type { ExecutorDefinition } from '../executor.ts';
import { stepDelegatingConfig, stepDelegatingExecutor } from '../delegating/executor.ts';
import { queueHandler, RUN_PRIORITY_TAG } from '../handlers/queue.ts';
import { ALIVE_TTL_SECONDS, DEFAULT_PREFIX, DEFAULT_QUEUE } from '../queue/keys.ts';
import { lazySchemas } from '../../util/zod.ts';
import { DefinitionError } from '../errors.ts';
import { launchConfig } from '../queue/job-data.ts';

export const queueConfig = lazySchemas((z) =>
  stepDelegatingConfig().extend({
    /** 'redis://HOST:PORT/DB' or 'rediss://...'. */
    redis: z.string().regex(/^rediss?:\/\/\S+$/, "expected 'redis://HOST:PORT/DB' or 'rediss://...'"),
    /** The queue of steps whose op names none (op tag weft/queue). */
    queue: z.string().min(1).max(200).default(DEFAULT_QUEUE),
    /** Key prefix in Redis, shared with the workers (default 'weft'). */
    prefix: z.string().min(1).max(100).regex(/^[^:\s]+$/, 'no colons or spaces').default(DEFAULT_PREFIX),
    /** Seconds the run's heartbeat in Redis outlives the launching process: then its queued steps are dropped. */
    heartbeatSeconds: z.number().int().min(1).max(3600).default(ALIVE_TTL_SECONDS),
    /** The queue holds the work: steps are queued when ready; a worker that took a step ahead would find no inputs. */
    startAhead: z.literal(false, { error: 'the queue executor queues each step once it is ready; it cannot start steps ahead' }).default(false),
    /**
     * The queue worker starts each step in a Docker container or a Kubernetes
     * Job of its own (celery_docker_executor, celery_k8s_job_executor), with
     * the fields of dockerExecutor or k8sJobExecutor; `coordinator` is where
     * the step connects back to the queue worker. Without it, the queue
     * worker runs the step in its own process.
     */
    launch: launchConfig().optional(),
  }),
);
export type QueueConfig = z.infer<ReturnType<typeof queueConfig>>;

export const queueExecutor: ExecutorDefinition<QueueConfig> = stepDelegatingExecutor({
  name: 'queue',
  configSchema: queueConfig,
  // The workers' own concurrency bounds the work, as Celery's does.
  defaultMaxConcurrent: 1024,
  handler: (config, ctx) => {
    const tag = ctx.job.tags[RUN_PRIORITY_TAG];
    const runPriority = tag === undefined ? 0 : Number(tag);
    if (!Number.isFinite(runPriority)) throw new DefinitionError(`job ${ctx.job.name}: tag ${RUN_PRIORITY_TAG} must be a number (got ${JSON.stringify(tag)})`);
    return queueHandler(config, runPriority, ctx.inputValues);
  },
});
