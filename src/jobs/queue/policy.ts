/**
 * What a queued step may make a queue worker do. Anyone who can write to the
 * worker's Redis can put a job on its queues, so a job is held to the
 * worker's own policy, not taken at its word:
 *
 * - the step's code location must be a file inside the worker's code root
 *   (`--code-root`, default: its working directory), so a job cannot make it
 *   import code from anywhere else on its machine;
 * - a `launch` (the container or Kubernetes Job the worker starts for the
 *   step) may use only fields that grant nothing beyond the image: no
 *   privileged containers, no host devices, no pod or Job spec of its own,
 *   no kubeconfig of the job's choosing, and host paths only below the
 *   worker's `--allow-mount` prefixes. `--trust-launch-options` lifts this,
 *   for a Redis only trusted writers reach.
 */
import { realpathSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LaunchConfig } from './job-data.ts';

export interface QueuePolicy {
  /** Code locations must be files under this directory. */
  codeRoot: string;
  /** Host paths a launched step may mount (docker volumes, k8s hostPath), by prefix. */
  mounts: readonly string[];
  /** Take every launch option a job names. */
  trustLaunchOptions: boolean;
}

/** Why the module a job names may not be imported by this worker, or null if it may. */
export function moduleRefusal(module: string, policy: QueuePolicy): string | null {
  let file: string;
  try {
    file = module.startsWith('file:') ? fileURLToPath(module) : resolve(policy.codeRoot, module);
  } catch {
    return `its code location ${JSON.stringify(module.slice(0, 200))} is not a file path or file: URL`;
  }
  let real: string;
  let root: string;
  try {
    root = realpathSync(policy.codeRoot);
    real = realpathSync(file);
  } catch {
    return `its code location ${file} does not exist on this worker`;
  }
  const rel = relative(root, real);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return `its code location ${file} is outside this worker's code root ${root} (--code-root)`;
  return null;
}

/** Why a launch config from a job is refused by this worker's policy, or null. */
export function launchRefusal(launch: LaunchConfig, policy: QueuePolicy): string | null {
  if (policy.trustLaunchOptions) return null;
  const why = 'docker' in launch ? dockerRefusal(launch.docker, policy) : k8sRefusal(launch.k8s as unknown as Record<string, unknown>, policy);
  return why === null ? null : `${why}: this worker does not take that from a job (start it with --trust-launch-options if only trusted writers reach its Redis)`;
}

const CONTAINER_OPTIONS = new Set(['Labels', 'WorkingDir', 'User', 'StopTimeout', 'HostConfig']);
const HOST_CONFIG = new Set(['Memory', 'MemorySwap', 'MemoryReservation', 'NanoCpus', 'CpuShares', 'CpuQuota', 'CpuPeriod', 'CpusetCpus', 'PidsLimit', 'ShmSize', 'Ulimits']);

function dockerRefusal(d: { volumes: readonly string[]; containerOptions: Record<string, unknown> }, policy: QueuePolicy): string | null {
  for (const v of d.volumes) {
    const host = v.split(':')[0] ?? '';
    if (host.startsWith('/') && !mountable(host, policy)) return `launch.docker.volumes mounts the host path ${host}, not below an --allow-mount prefix`;
  }
  for (const [k, value] of Object.entries(d.containerOptions)) {
    if (!CONTAINER_OPTIONS.has(k)) return `launch.docker.containerOptions.${k}`;
    if (k === 'HostConfig' && value && typeof value === 'object') {
      for (const h of Object.keys(value)) if (!HOST_CONFIG.has(h)) return `launch.docker.containerOptions.HostConfig.${h}`;
    }
  }
  return null;
}

function k8sRefusal(k: Record<string, unknown>, policy: QueuePolicy): string | null {
  if (k['kubeconfig'] !== undefined) return 'launch.k8s.kubeconfig (the worker uses its own: KUBECONFIG, or ~/.kube/config)';
  const perStep = (k['perStepK8sConfig'] ?? {}) as Record<string, Record<string, unknown>>;
  for (const [where, c] of [['launch.k8s', k] as const, ...Object.entries(perStep).map(([op, c]) => [`launch.k8s.perStepK8sConfig.${op}`, c] as const)]) {
    for (const field of ['podSpec', 'jobSpec']) {
      const spec = c[field];
      if (spec !== undefined && spec !== null && Object.keys(spec).length > 0) return `${where}.${field}`;
    }
    for (const v of (c['volumes'] ?? []) as Record<string, unknown>[]) {
      const hostPath = v['hostPath'] as { path?: unknown } | undefined;
      if (hostPath !== undefined && !(typeof hostPath.path === 'string' && mountable(hostPath.path, policy))) return `${where}.volumes mounts the host path ${String(hostPath.path)}, not below an --allow-mount prefix`;
    }
  }
  return null;
}

function mountable(path: string, policy: QueuePolicy): boolean {
  const p = resolve(path);
  return policy.mounts.some((m) => {
    const prefix = resolve(m);
    return p === prefix || p.startsWith(prefix.endsWith(sep) ? prefix : prefix + sep);
  });
}
