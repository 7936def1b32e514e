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
import { stepDelegatingConfig, stepDelegatingExecutor } from '../delegating/executor.ts';
import { cleanupK8sRun, k8sHandler } from '../handlers/k8s.ts';
import { k8sLaunchConfig } from '../handlers/k8s-config.ts';


export { k8sLaunchConfig, type K8sLaunchConfig } from '../handlers/k8s-config.ts';

export const k8sConfig = lazySchemas(() => stepDelegatingConfig().extend(k8sLaunchConfig().shape));
export type K8sConfig = z.infer<ReturnType<typeof k8sConfig>>;

export const k8sJobExecutor: ExecutorDefinition<K8sConfig> = stepDelegatingExecutor({
  name: 'k8s_job',
  configSchema: k8sConfig,
  defaultMaxConcurrent: 16,
  handler: (config) => k8sHandler(config),
  cleanupRun: (config, runId) => cleanupK8sRun(config, runId),
});
