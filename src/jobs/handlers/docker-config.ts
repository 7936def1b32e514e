/**
 * What a step's container is made of: the executor's config, overridden per
 * op by the op tag `weft/docker` (JSON with the same fields).
 */
import { WeftError } from '../../errors.ts';
import { lazySchemas } from '../../util/zod.ts';
import type { PlannedStep } from '../plan.ts';
import { mergeConfig } from '../executor.ts';
import { jsonTag } from '../op-tags.ts';
import type { z } from 'zod';
import { envVar, imageFields } from './container-env.ts';
import { coordinatorConfig } from '../delegating/config.ts';

/** A Docker image that is not there (and cannot be pulled): the run fails before any step. */
export class ImageNotFoundError extends WeftError {
  override name = 'ImageNotFoundError';
}

export const DOCKER_TAG = 'weft/docker';

/** Engine API container-create options weft sets itself. */
const RESERVED = ['Image', 'Env', 'NetworkingConfig', 'Cmd', 'Labels', 'name'];

/** The fields of the executor's config an op's `weft/docker` tag may set too (built on first use), and the tag's schema. */
export const dockerSchemas = lazySchemas((z) => {
  const volume = z.string().regex(/^[^:]+:\/[^:]*(:(ro|rw))?$/, "expected 'HOST:CONTAINER' or 'HOST:CONTAINER:ro'");

  const containerOptions = z
    .record(z.string(), z.unknown())
    .superRefine((o, ctx) => {
      for (const k of RESERVED) if (k in o) ctx.addIssue({ code: 'custom', path: [k], message: `${k} is set by weft (use image, env or network)` });
      const host = o['HostConfig'];
      if (host !== null && typeof host === 'object' && 'NetworkMode' in host) ctx.addIssue({ code: 'custom', path: ['HostConfig', 'NetworkMode'], message: 'set the network with network or networks' });
    });

  /** The fields an op's `weft/docker` tag may set. */
  const dockerStepConfig = z.object({
    /** 'NAME' copies NAME from this process's environment; 'NAME=VALUE' sets it. */
    env: z.array(envVar(z)).default([]),
    /** 'HOST:CONTAINER' or 'HOST:CONTAINER:ro' bind mounts. */
    volumes: z.array(volume).default([]),
    /** Passed to the Engine API's container create (e.g. { HostConfig: { Memory: 268435456 } }); may not set the image, env or network. */
    containerOptions: containerOptions.default({}),
  });

  const opTag = dockerStepConfig.partial().extend({ image: z.string().min(1).optional() }).strict();
  return { dockerStepConfig, opTag };
});

export interface StepContainerConfig {
  image: string;
  env: string[];
  volumes: string[];
  containerOptions: Record<string, unknown>;
}

/** The container config of a step: the executor's, with its op's tag over it (lists add up, containerOptions merge). */
export function containerConfigFor(step: PlannedStep, base: StepContainerConfig): StepContainerConfig {
  const o = jsonTag(step, DOCKER_TAG, dockerSchemas().opTag, 'JSON with image, env, volumes or containerOptions');
  if (!o) return base;
  return {
    image: o.image ?? base.image,
    env: [...base.env, ...(o.env ?? [])],
    volumes: [...base.volumes, ...(o.volumes ?? [])],
    containerOptions: mergeConfig(base.containerOptions, o.containerOptions ?? {}) as Record<string, unknown>,
  };
}

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
