/**
 * What a step's Kubernetes Job is made of (after dagster-k8s): the
 * executor's config, then the op tag `weft/k8s` (JSON), then the executor's
 * `perStepK8sConfig[op]`, each over the one before: lists add up, maps and
 * `podSpec`/`jobSpec` merge, single values are replaced.
 */
import type { z } from 'zod';
import { lazySchemas } from '../../util/zod.ts';
import type { PlannedStep } from '../plan.ts';
import { mergeConfig } from '../executor.ts';
import { jsonTag } from '../op-tags.ts';
import { envVar, imageFields } from './container-env.ts';
import { coordinatorConfig } from '../delegating/config.ts';

export const K8S_TAG = 'weft/k8s';

/** The fields an op may set by its `weft/k8s` tag or the executor's perStepK8sConfig (built on first use). */
export const k8sStepConfig = lazySchemas((z) => {
  const quantities = z.record(z.string(), z.union([z.string(), z.number()]));
  const object = z.record(z.string(), z.unknown());

  const k8sStepConfig = z
    .object({
      image: z.string().min(1).optional(),
      imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional(),
      imagePullSecrets: z.array(z.string().min(1)).optional(),
      serviceAccountName: z.string().min(1).optional(),
      /** 'NAME' copies NAME from this process's environment; 'NAME=VALUE' sets it. */
      env: z.array(envVar(z)).optional(),
      /** ConfigMaps and Secrets whose keys become environment variables of the step. */
      envConfigMaps: z.array(z.string().min(1)).optional(),
      envSecrets: z.array(z.string().min(1)).optional(),
      /** Pod volumes and the step container's mounts, as the Kubernetes API writes them. */
      volumes: z.array(object).optional(),
      volumeMounts: z.array(object).optional(),
      labels: z.record(z.string(), z.string()).optional(),
      resources: z.object({ limits: quantities.optional(), requests: quantities.optional() }).strict().optional(),
      /** Merged into the pod's spec (nodeSelector, tolerations, securityContext, ...). */
      podSpec: object.optional(),
      /** Merged into the Job's spec (ttlSecondsAfterFinished, ...). */
      jobSpec: object.optional(),
    })
    .strict();
  return k8sStepConfig;
});
export type K8sStepConfig = z.infer<ReturnType<typeof k8sStepConfig>>;

/** A step's Job config, resolved. */
export interface StepJobConfig {
  image: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never' | undefined;
  imagePullSecrets: string[];
  serviceAccountName?: string | undefined;
  env: string[];
  envConfigMaps: string[];
  envSecrets: string[];
  volumes: Record<string, unknown>[];
  volumeMounts: Record<string, unknown>[];
  labels: Record<string, string>;
  resources: { limits?: Record<string, string | number> | undefined; requests?: Record<string, string | number> | undefined };
  podSpec: Record<string, unknown>;
  jobSpec: Record<string, unknown>;
}

/** Executor config < op tag `weft/k8s` < perStepK8sConfig[op name]. */
export function jobConfigFor(step: PlannedStep, base: StepJobConfig, perStep: Readonly<Record<string, K8sStepConfig>>): StepJobConfig {
  let out = base;
  const tagged = jsonTag(step, K8S_TAG, k8sStepConfig(), 'JSON with the fields of perStepK8sConfig');
  if (tagged) out = over(out, tagged);
  const own = perStep[step.node.op.name];
  return own ? over(out, own) : out;
}

function over(a: StepJobConfig, b: K8sStepConfig): StepJobConfig {
  return {
    image: b.image ?? a.image,
    imagePullPolicy: b.imagePullPolicy ?? a.imagePullPolicy,
    imagePullSecrets: [...a.imagePullSecrets, ...(b.imagePullSecrets ?? [])],
    serviceAccountName: b.serviceAccountName ?? a.serviceAccountName,
    env: [...a.env, ...(b.env ?? [])],
    envConfigMaps: [...a.envConfigMaps, ...(b.envConfigMaps ?? [])],
    envSecrets: [...a.envSecrets, ...(b.envSecrets ?? [])],
    volumes: [...a.volumes, ...(b.volumes ?? [])],
    volumeMounts: [...a.volumeMounts, ...(b.volumeMounts ?? [])],
    labels: { ...a.labels, ...b.labels },
    resources: { limits: { ...a.resources.limits, ...b.resources?.limits }, requests: { ...a.resources.requests, ...b.resources?.requests } },
    podSpec: mergeConfig(a.podSpec, b.podSpec ?? {}) as Record<string, unknown>,
    jobSpec: mergeConfig(a.jobSpec, b.jobSpec ?? {}) as Record<string, unknown>,
  };
}

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
