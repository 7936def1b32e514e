/** Environment variables of a step's container or pod, as the docker and Kubernetes executors take them. */
import { createHash } from 'node:crypto';
import type * as Zod from 'zod';
import type { WeftZod } from '../../util/zod.ts';
import { STEP_ARGS_ENV } from '../step/spec.ts';

/**
 * The name of an attempt's container or Kubernetes Job: unique per run, step
 * and attempt, DNS-1123 (valid for Docker too), at most 63 characters. One
 * name per attempt: what a queue worker that died left of it is found and
 * replaced when another worker takes the attempt over.
 */
export function attemptResourceName(runId: string, stepKey: string, attempt: number): string {
  const hash = createHash('sha1').update(`${runId}\n${stepKey}\n${attempt}`).digest('hex').slice(0, 12);
  const readable = stepKey.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40).replace(/-+$/, '');
  return `weft-${readable ? `${readable}-` : ''}${hash}`;
}

/** 'NAME' (copied from the launching process) or 'NAME=VALUE'. */
export function envVar(z: WeftZod): Zod.ZodString {
  return z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*(=.*)?$/s, "expected 'NAME' (copied from this process) or 'NAME=VALUE'");
}

/** The config fields of every executor that runs steps from an image (docker, Kubernetes). */
export function imageFields(z: WeftZod) {
  return {
    /** Where the code location's project (the nearest directory with a package.json) is in the image; default: the same path as here. */
    codeDir: z.string().startsWith('/', 'an absolute path in the image').optional(),
    /** Seconds a cancelled step's container or pod gets between SIGTERM and SIGKILL. */
    stopTimeoutSeconds: z.number().int().min(0).max(600).default(5),
  };
}

/** 'NAME' and 'NAME=VALUE' as NAME=VALUE, the last of a name winning (a NAME this process lacks is left out). */
export function resolveEnv(env: readonly string[], from: NodeJS.ProcessEnv = process.env): string[] {
  const out = new Map<string, string>();
  for (const e of env) {
    const i = e.indexOf('=');
    if (i > 0) out.set(e.slice(0, i), e);
    else if (from[e] !== undefined) out.set(e, `${e}=${from[e]}`);
  }
  return [...out.values()];
}

/** A step's environment: weft's defaults, then the config's (which may override them), then the step's arguments (which nothing overrides). */
export function stepEnvironment(weft: Readonly<Record<string, string>>, config: readonly string[]): string[] {
  const { [STEP_ARGS_ENV]: args, ...defaults } = weft;
  return resolveEnv([...Object.entries(defaults).map(([k, v]) => `${k}=${v}`), ...config, ...(args === undefined ? [] : [`${STEP_ARGS_ENV}=${args}`])]);
}
