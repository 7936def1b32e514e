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
import { stepDelegatingConfig } from '../delegating/config.ts';
import { stepDelegatingExecutor } from '../delegating/executor.ts';
import { dockerLaunchConfig } from '../handlers/docker-config.ts';


export { dockerLaunchConfig, type DockerLaunchConfig } from '../handlers/docker-config.ts';

export const dockerConfig = lazySchemas(() => stepDelegatingConfig().extend(dockerLaunchConfig().shape));
export type DockerConfig = z.infer<ReturnType<typeof dockerConfig>>;

export const dockerExecutor: ExecutorDefinition<DockerConfig> = stepDelegatingExecutor({
  name: 'docker',
  configSchema: dockerConfig,
  defaultMaxConcurrent: 8,
  // The handler (and the Docker client) load when a run starts or is cleaned up.
  handler: async (config) => (await import('../handlers/docker.ts')).dockerHandler(config),
  cleanupRun: async (_config, runId) => (await import('../handlers/docker.ts')).cleanupDockerRun(runId),
});
