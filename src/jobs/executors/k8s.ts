/**
 * Runs each step as a Kubernetes Job of its own (Dagster's
 * k8s_job_executor), on the step-delegating loop with the Kubernetes
 * handler (handlers/k8s.ts). The Job's pod runs `weft step`, which must
 * reach the run's coordinator: set `coordinator: { host: '0.0.0.0',
 * advertiseAddress: 'ws://ADDRESS-PODS-REACH:PORT', port }` (a Service, the
 * launching pod's IP) unless the pods share this machine's network.
 *
 *   job({ name: 'etl', executorDef: k8sJobExecutor.configured({ image: 'registry.example/etl:1', namespace: 'data' }) }, ...)
 */
import type { z } from 'zod';
import { lazySchemas } from '../../util/zod.ts';
import type { ExecutorDefinition } from '../executor.ts';
import { stepDelegatingConfig } from '../delegating/config.ts';
import { stepDelegatingExecutor } from '../delegating/executor.ts';
import { k8sLaunchConfig } from '../handlers/k8s-config.ts';


export { k8sLaunchConfig, type K8sLaunchConfig } from '../handlers/k8s-config.ts';

export const k8sConfig = lazySchemas(() => stepDelegatingConfig().extend(k8sLaunchConfig().shape));
export type K8sConfig = z.infer<ReturnType<typeof k8sConfig>>;

export const k8sJobExecutor: ExecutorDefinition<K8sConfig> = stepDelegatingExecutor({
  name: 'k8s_job',
  configSchema: k8sConfig,
  defaultMaxConcurrent: 16,
  // The handler (and the Kubernetes client) load when a run starts or is cleaned up.
  handler: async (config) => (await import('../handlers/k8s.ts')).k8sHandler(config),
  cleanupRun: async (config, runId) => (await import('../handlers/k8s.ts')).cleanupK8sRun(config, runId),
});
