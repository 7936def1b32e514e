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
import { k8sHandler } from '../handlers/k8s.ts';
import { k8sStepConfig } from '../handlers/k8s-config.ts';
import { envVar, imageFields } from '../handlers/container-env.ts';
import { coordinatorConfig } from '../delegating/coordinator.ts';

/**
 * What the Kubernetes handler takes: the executor's own fields and where
 * the steps connect back to. Also the queue executor's `launch: { k8s }`.
 */
export const k8sLaunchConfig = lazySchemas((z) => {
  const object = z.record(z.string(), z.unknown());
  return z.object({
  /** Image of every step (an op's `weft/k8s` tag or perStepK8sConfig may name another). */
  image: z.string().min(1),
  namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'a DNS-1123 label').default('default'),
  /** A kubeconfig file; default: KUBECONFIG, then ~/.kube/config. */
  kubeconfig: z.string().min(1).optional(),
  /** Use the service account of the pod this process runs in. */
  inCluster: z.boolean().default(false),
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional(),
  imagePullSecrets: z.array(z.string().min(1)).default([]),
  serviceAccountName: z.string().min(1).optional(),
  /** 'NAME' copies NAME from this process's environment; 'NAME=VALUE' sets it. */
  env: z.array(envVar(z)).default([]),
  envConfigMaps: z.array(z.string().min(1)).default([]),
  envSecrets: z.array(z.string().min(1)).default([]),
  volumes: z.array(object).default([]),
  volumeMounts: z.array(object).default([]),
  labels: z.record(z.string(), z.string()).default({}),
  resources: z.object({ limits: z.record(z.string(), z.union([z.string(), z.number()])).optional(), requests: z.record(z.string(), z.union([z.string(), z.number()])).optional() }).strict().optional(),
  podSpec: object.default({}),
  jobSpec: object.default({}),
  /** Per op name: the same fields as the op tag `weft/k8s`, over it. */
  perStepK8sConfig: z.record(z.string(), k8sStepConfig()).default({}),
  /** Seconds a step's Job may run (its activeDeadlineSeconds). */
  jobWaitTimeout: z.number().int().positive().default(86_400),
  ...imageFields(z),
  coordinator: coordinatorConfig(),
}).strict();
});
export type K8sLaunchConfig = z.infer<ReturnType<typeof k8sLaunchConfig>>;

export const k8sConfig = lazySchemas(() => stepDelegatingConfig().extend(k8sLaunchConfig().shape));
export type K8sConfig = z.infer<ReturnType<typeof k8sConfig>>;

export const k8sJobExecutor: ExecutorDefinition<K8sConfig> = stepDelegatingExecutor({
  name: 'k8s_job',
  configSchema: k8sConfig,
  defaultMaxConcurrent: 16,
  handler: (config) => k8sHandler(config),
});
