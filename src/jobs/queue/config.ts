/**
 * The queue executor's config (executors/queue.ts), here where both the
 * executor and its handler (handlers/queue.ts) import it.
 */
import type { z } from 'zod';
import { lazySchemas } from '../../util/zod.ts';
import { stepDelegatingConfig } from '../delegating/config.ts';
import { launchConfig } from './job-data.ts';
import { ALIVE_TTL_SECONDS, DEFAULT_PREFIX, DEFAULT_QUEUE } from './keys.ts';

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
