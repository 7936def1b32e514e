/**
 * Runs each step in a Docker container of its own (Dagster's
 * docker_executor), on the step-delegating loop with the docker handler
 * (handlers/docker.ts). The container runs `weft step`, which connects back
 * to the run's coordinator: weft must be on the image's PATH, and the
 * coordinator reachable from the container (`network: 'host'` reaches
 * 127.0.0.1; otherwise set `coordinator: { host, advertiseAddress }`).
 *
 *   job({ name: 'etl', executorDef: dockerExecutor.configured({ image: 'my-etl:1', network: 'host' }) }, ...)
 */
import type { z } from 'zod';
import { lazySchemas } from '../../util/zod.ts';
import type { ExecutorDefinition } from '../executor.ts';
import { stepDelegatingConfig, stepDelegatingExecutor } from '../delegating/executor.ts';
import { dockerHandler } from '../handlers/docker.ts';
import { dockerSchemas } from '../handlers/docker-config.ts';
import { imageFields } from '../handlers/container-env.ts';
import { coordinatorConfig } from '../delegating/coordinator.ts';

/**
 * What the docker handler takes: the executor's own fields and where the
 * steps connect back to. Also the queue executor's `launch: { docker }`.
 */
export const dockerLaunchConfig = lazySchemas((z) =>
  z
    .object({
      ...dockerSchemas().dockerStepConfig.shape,
      /** Image of every step (an op's `weft/docker` tag may name another). */
      image: z.string().min(1),
      /** The network the containers join (e.g. 'host'). */
      network: z.string().min(1).optional(),
      /** Networks the containers join, each (after `network`, if any). */
      networks: z.array(z.string().min(1)).default([]),
      /** Pull images that are not present from this registry, with these credentials. Without it, images must be present. */
      registry: z.object({ url: z.string().min(1), username: z.string(), password: z.string() }).strict().optional(),
      ...imageFields(z),
      coordinator: coordinatorConfig(),
    })
    .strict(),
);
export type DockerLaunchConfig = z.infer<ReturnType<typeof dockerLaunchConfig>>;

export const dockerConfig = lazySchemas(() => stepDelegatingConfig().extend(dockerLaunchConfig().shape));
export type DockerConfig = z.infer<ReturnType<typeof dockerConfig>>;

export const dockerExecutor: ExecutorDefinition<DockerConfig> = stepDelegatingExecutor({
  name: 'docker',
  configSchema: dockerConfig,
  defaultMaxConcurrent: 8,
  handler: (config) => dockerHandler(config),
});
