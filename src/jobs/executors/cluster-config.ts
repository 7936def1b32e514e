/** The cluster executor's config and op tag: its definition and its run both read them. */
import type { z } from 'zod';
import { lazySchemas } from '../../util/zod.ts';
import { retriesConfig } from './common.ts';

export const clusterConfig = lazySchemas((z) =>
  z
  .object({
    cluster: z
      .union([
        z.object({ local: z.object({ workers: z.number().int().min(1).max(64).optional(), threadsPerWorker: z.number().int().min(1).max(256).optional() }).strict() }).strict(),
        z.object({ existing: z.object({ address: z.string().regex(/^wss?:\/\/\S+$/, 'expected ws://HOST:PORT'), token: z.string().optional() }).strict() }).strict(),
      ])
      .default({ local: {} }),
    retries: retriesConfig(),
    /** Fetch every output into the run's result at the end (default); false leaves them on the cluster, which frees them. */
    fetchOutputs: z.boolean().default(true),
  })
  .strict(),
);
export type ClusterConfig = z.infer<ReturnType<typeof clusterConfig>>;

/** Op tag naming the resources a step's task holds while it runs, as JSON: `{ "GPU": 1 }`. */
export const RESOURCES_TAG = 'weft/resources';
