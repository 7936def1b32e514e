/**
 * The config of every step-delegating executor (the loop's own fields and its
 * coordinator's), apart from the loop: an executor's definition and a
 * launcher's config import it without loading the loop.
 */
import type { z } from 'zod';
import { lazySchemas } from '../../util/zod.ts';
import { retriesConfig } from '../executors/common.ts';

export const coordinatorConfig = lazySchemas((z) =>
  z
    .object({
      /** Interface to listen on (default 127.0.0.1: steps on this machine only). */
      host: z.string().min(1).default('127.0.0.1'),
      /** Port (default 0: a free one). */
      port: z.number().int().min(0).max(65535).default(0),
      /** The address steps connect to, when it is not host:port as seen from here (a container network, a Kubernetes Service). */
      advertiseAddress: z.string().regex(/^wss?:\/\/\S+$/, 'expected ws://HOST:PORT').optional(),
    })
    .strict()
    .default({ host: '127.0.0.1', port: 0 }),
);
export type CoordinatorConfig = z.infer<ReturnType<typeof coordinatorConfig>>;

/** The config every step-delegating executor takes (built on first use); executors extend it with their own fields. */
export const stepDelegatingConfig = lazySchemas((z) =>
  z
  .object({
    /** Steps running at once (default: the executor's, e.g. the number of CPUs). */
    maxConcurrent: z.number().int().min(1).max(1024).optional(),
    /** At most `limit` running steps whose op has tag `key` (with `value`, if given). */
    tagConcurrencyLimits: z.array(z.object({ key: z.string().min(1), value: z.string().optional(), limit: z.number().int().min(1) }).strict()).default([]),
    retries: retriesConfig(),
    /** Where steps connect back to: 127.0.0.1 on a free port unless set. */
    coordinator: coordinatorConfig(),
    /** Seconds between health checks of a running step. */
    healthCheckIntervalSeconds: z.number().positive().max(3600).default(5),
    /**
     * Start the process of a step whose upstream steps are all running, within
     * `maxConcurrent`; it gets its inputs once they exist. Its start-up (a
     * container's, a pod's) then overlaps the work before it. A step that will
     * not run after all (its upstream failed) is stopped unseen.
     */
    startAhead: z.boolean().default(true),
  })
  .strict(),
);
export type StepDelegatingConfig = z.infer<ReturnType<typeof stepDelegatingConfig>>;

