/**
 * The Kubernetes handler, under the k8s Job executor: one Job per step
 * attempt (Dagster's k8s_job_executor), through @kubernetes/client-node.
 * The Job's pod runs `weft step`, which connects back to the run's
 * coordinator. `backoffLimit` is 0: weft does the retries, each in a Job of
 * its own.
 *
 * Health comes from the Job's and its pod's status: a Job that failed, a pod
 * that cannot pull its image or start its container, or a container that
 * ended without reporting (its exit code, `OOMKilled`, the last lines of its
 * log) fails the step with that reason; a Job deleted from outside does too.
 * Terminate deletes the Job with its pods. At the end of the run, any Job
 * still labelled with the run is deleted too.
 */
import { createHash } from 'node:crypto';
import type { BatchV1Api, CoreV1Api, V1Job, V1Pod } from '@kubernetes/client-node';
import { WeftError } from '../../errors.ts';
import type { StepHandler, StepHandlerContext, StepHealth } from '../delegating/handler.ts';
import type { K8sLaunchConfig } from './k8s-config.ts';
import { mergeConfig } from '../executor.ts';
import { mapModule } from './docker.ts';
import { attemptResourceName, stepEnvironment } from './container-env.ts';
import { jobConfigFor, type StepJobConfig } from './k8s-config.ts';
import { optionalPackage } from '../../util/optional.ts';

export const K8S_LABEL_RUN = 'weft/run';
export const K8S_LABEL_STEP = 'weft/step';
export const K8S_LABEL_ATTEMPT = 'weft/attempt';
const TAIL_LINES = 20;
const DELETE_POLL_MS = 100;
/** Pod states that never get better on their own. */
const STUCK = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError', 'ErrImageNeverPull']);

interface Api {
  batch: BatchV1Api;
  core: CoreV1Api;
}

/** The Job name of an attempt: DNS-1123, at most 63 characters, unique per run, step and attempt. */
export const k8sJobName = attemptResourceName;

/** A label value (at most 63 of [A-Za-z0-9-_.], alphanumeric at both ends): the value itself, or a readable part and a hash. */
export function labelValue(v: string): string {
  if (/^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/.test(v)) return v;
  const hash = createHash('sha1').update(v).digest('hex').slice(0, 10);
  const readable = v.replace(/[^-A-Za-z0-9_.]+/g, '-').replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '').slice(0, 50);
  return readable ? `${readable}-${hash}` : hash;
}

export function k8sHandler(config: K8sLaunchConfig): StepHandler {
  const jobs = new Map<StepHandlerContext, string>();
  let api: Api | null = null;
  let runId = '';
  const { namespace } = config;
  const client = (): Api => {
    if (!api) throw new WeftError('the k8s handler was not prepared for the run');
    return api;
  };
  const base: StepJobConfig = {
    image: config.image,
    imagePullPolicy: config.imagePullPolicy,
    imagePullSecrets: config.imagePullSecrets,
    serviceAccountName: config.serviceAccountName,
    env: config.env,
    envConfigMaps: config.envConfigMaps,
    envSecrets: config.envSecrets,
    volumes: config.volumes,
    volumeMounts: config.volumeMounts,
    labels: config.labels,
    resources: config.resources ?? {},
    podSpec: config.podSpec,
    jobSpec: config.jobSpec,
  };

  return {
    name: 'k8s',

    async prepare(run) {
      runId = run.runId;
      // Every step's config resolves (a bad op tag fails the run before any Job).
      for (const s of run.steps) jobConfigFor(s, base, config.perStepK8sConfig);
      api = await connect(config);
    },

    async launch(ctx) {
      const cfg = jobConfigFor(ctx.step, base, config.perStepK8sConfig);
      const { args, env } = await ctx.weftStep(config.codeDir ? { module: mapModule(ctx.spec.module, config.codeDir) } : {});
      const name = k8sJobName(ctx.runId, ctx.stepKey, ctx.attempt);
      const body = jobManifest(name, ctx, cfg, args, env, config);
      jobs.set(ctx, name);
      try {
        await client().batch.createNamespacedJob({ namespace, body });
      } catch (err) {
        if (codeOf(err) !== 409) throw err;
        // Left by a queue worker that died running this attempt: replaced.
        ctx.log(`replacing the Kubernetes Job ${name} an earlier launch of this attempt left`);
        await deleteJob(client(), namespace, name, 0);
        await client().batch.createNamespacedJob({ namespace, body });
      }
    },

    async checkHealth(ctx): Promise<StepHealth> {
      const name = jobs.get(ctx);
      if (!name) return { healthy: true };
      let job: V1Job;
      try {
        job = await client().batch.readNamespacedJob({ name, namespace });
      } catch (err) {
        if (codeOf(err) === 404) return { healthy: false, reason: `the Kubernetes Job ${name} of step ${ctx.stepKey} was deleted (from outside weft)` };
        throw err;
      }
      const pod = await latestPod(client(), namespace, name);
      const waiting = pod?.status?.containerStatuses?.[0]?.state?.waiting;
      if (waiting?.reason && STUCK.has(waiting.reason)) return { healthy: false, reason: `the pod ${pod?.metadata?.name} of step ${ctx.stepKey} cannot start: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}` };
      const failed = (job.status?.failed ?? 0) > 0 || job.status?.conditions?.some((c) => c.type === 'Failed' && c.status === 'True');
      const succeeded = (job.status?.succeeded ?? 0) > 0;
      if (!failed && !succeeded) return { healthy: true };
      return { healthy: false, reason: await describeEnd(client(), namespace, name, ctx.stepKey, job, pod) };
    },

    async terminate(ctx) {
      const name = jobs.get(ctx);
      jobs.delete(ctx);
      if (!name) return;
      await deleteJob(client(), namespace, name, ctx.finished ? undefined : config.stopTimeoutSeconds);
    },

    async close() {
      if (api) await deleteRunJobs(api, namespace, runId);
    },
  };
}

/** The Kubernetes API, as the config says to reach it. */
async function connect(config: K8sLaunchConfig): Promise<Api> {
  // Loaded with the first run, not with weft: about 300 ms.
  const k8s = await optionalPackage(['@kubernetes/client-node'], 'the Kubernetes executor', () => import('@kubernetes/client-node'));
  const kc = new k8s.KubeConfig();
  try {
    if (config.inCluster) kc.loadFromCluster();
    else if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new WeftError(`cannot load the Kubernetes config (${config.inCluster ? 'in-cluster' : (config.kubeconfig ?? 'KUBECONFIG or ~/.kube/config')}): ${(err as Error).message}`);
  }
  return { batch: kc.makeApiClient(k8s.BatchV1Api), core: kc.makeApiClient(k8s.CoreV1Api) };
}

/** Deletes every Job labelled with the run (and its pods); resolves with how many. */
async function deleteRunJobs(api: Api, namespace: string, runId: string): Promise<number> {
  const left = await api.batch.listNamespacedJob({ namespace, labelSelector: `${K8S_LABEL_RUN}=${labelValue(runId)}` });
  await Promise.all(left.items.map((j) => (j.metadata?.name ? deleteJob(api, namespace, j.metadata.name) : undefined)));
  return left.items.length;
}

/** The Jobs of a run whose launcher died (the run monitor calls this through the k8s executor). */
export async function cleanupK8sRun(config: K8sLaunchConfig, runId: string): Promise<number> {
  return deleteRunJobs(await connect(config), config.namespace, runId);
}

function jobManifest(name: string, ctx: StepHandlerContext, cfg: StepJobConfig, args: string[], stepEnv: Record<string, string>, config: K8sLaunchConfig): V1Job {
  const labels = { ...cfg.labels, 'app.kubernetes.io/managed-by': 'weft', [K8S_LABEL_RUN]: labelValue(ctx.runId), [K8S_LABEL_STEP]: labelValue(ctx.stepKey), [K8S_LABEL_ATTEMPT]: String(ctx.attempt) };
  const env = stepEnvironment(stepEnv, cfg.env).map((e) => {
    const i = e.indexOf('=');
    return { name: e.slice(0, i), value: e.slice(i + 1) };
  });
  const container = {
    name: 'step',
    image: cfg.image,
    ...(cfg.imagePullPolicy ? { imagePullPolicy: cfg.imagePullPolicy } : {}),
    command: ['weft', ...args],
    env,
    envFrom: [...cfg.envConfigMaps.map((n) => ({ configMapRef: { name: n } })), ...cfg.envSecrets.map((n) => ({ secretRef: { name: n } }))],
    volumeMounts: cfg.volumeMounts,
    resources: cfg.resources,
    ...(config.codeDir ? { workingDir: config.codeDir } : {}),
  };
  const podSpec = mergeConfig(
    {
      restartPolicy: 'Never',
      containers: [container],
      volumes: cfg.volumes,
      imagePullSecrets: cfg.imagePullSecrets.map((n) => ({ name: n })),
      ...(cfg.serviceAccountName ? { serviceAccountName: cfg.serviceAccountName } : {}),
    },
    cfg.podSpec,
  );
  const spec = mergeConfig({ activeDeadlineSeconds: config.jobWaitTimeout, template: { metadata: { labels }, spec: podSpec } }, cfg.jobSpec) as Record<string, unknown>;
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: config.namespace, labels, annotations: { 'weft/run-id': ctx.runId, 'weft/step-key': ctx.stepKey } },
    // weft does the retries, each attempt in a Job of its own.
    spec: { ...spec, backoffLimit: 0 } as V1Job['spec'],
  };
}

/** Why a Job ended without its step reporting: the container's exit, OOMKilled, the pod's reason, the last lines of its log. */
async function describeEnd(api: Api, namespace: string, name: string, stepKey: string, job: V1Job, pod: V1Pod | undefined): Promise<string> {
  const term = pod?.status?.containerStatuses?.[0]?.state?.terminated;
  let how: string;
  if (term) how = `its container exited with code ${term.exitCode}${term.reason === 'OOMKilled' ? ' (OOMKilled: it used more memory than its limit)' : term.reason && term.reason !== 'Error' && term.reason !== 'Completed' ? ` (${term.reason})` : ''}`;
  else {
    const cond = job.status?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True');
    how = `it failed${cond?.reason ? ` (${cond.reason}${cond.message ? `: ${cond.message}` : ''})` : pod?.status?.reason ? ` (${pod.status.reason})` : ''}`;
  }
  let tail = '';
  if (pod?.metadata?.name) {
    try {
      const log = await api.core.readNamespacedPodLog({ name: pod.metadata.name, namespace, container: 'step', tailLines: TAIL_LINES });
      if (log.trim()) tail = `; its last output:\n${log.trimEnd()}`;
    } catch {
      // no log to show
    }
  }
  return `the Kubernetes Job ${name} of step ${stepKey} ended without reporting the end of the step: ${how}${tail}`;
}

async function latestPod(api: Api, namespace: string, job: string): Promise<V1Pod | undefined> {
  const pods = await api.core.listNamespacedPod({ namespace, labelSelector: `job-name=${job}` });
  return pods.items.sort((a, b) => String(a.metadata?.creationTimestamp ?? '').localeCompare(String(b.metadata?.creationTimestamp ?? ''))).at(-1);
}

/**
 * Deletes a Job with its pods (Foreground: the Job goes once its pods have)
 * and waits until it is gone, so that nothing of a run outlives it.
 */
async function deleteJob(api: Api, namespace: string, name: string, gracePeriodSeconds?: number): Promise<void> {
  try {
    await api.batch.deleteNamespacedJob({ name, namespace, propagationPolicy: 'Foreground', ...(gracePeriodSeconds === undefined ? {} : { gracePeriodSeconds }) });
  } catch (err) {
    if (codeOf(err) === 404) return;
    throw err;
  }
  const end = Date.now() + ((gracePeriodSeconds ?? 30) + 30) * 1000;
  while (Date.now() < end) {
    try {
      await api.batch.readNamespacedJob({ name, namespace });
    } catch (err) {
      if (codeOf(err) === 404) return;
      throw err;
    }
    await new Promise((r) => setTimeout(r, DELETE_POLL_MS));
  }
  throw new WeftError(`the Kubernetes Job ${name} was still there ${(gracePeriodSeconds ?? 30) + 30} s after it was deleted`);
}

function codeOf(err: unknown): number | undefined {
  return (err as { code?: number }).code;
}
