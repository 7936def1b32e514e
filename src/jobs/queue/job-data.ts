/** What a queued step's BullMQ job carries, checked by the worker that takes it. */
import type { z } from 'zod';
import { lazySchemas } from '../../util/zod.ts';
import type { StepSpec } from '../step/spec.ts';
import { dockerLaunchConfig, type DockerLaunchConfig } from '../handlers/docker-config.ts';
import { k8sLaunchConfig, type K8sLaunchConfig } from '../handlers/k8s-config.ts';

/** Where a queue worker starts a step: a container, or a Kubernetes Job (queue executor's `launch`). */
export type LaunchConfig = { docker: DockerLaunchConfig } | { k8s: K8sLaunchConfig };

export const launchConfig = lazySchemas((z) => z.union([z.object({ docker: dockerLaunchConfig() }).strict(), z.object({ k8s: k8sLaunchConfig() }).strict()]));

/**
 * Where an input of a copy of a mapped step, or of a step collecting
 * mapped outputs, comes from: an output, or a list of outputs. The worker
 * cannot know these from the job (the copies are made as items are
 * emitted, in the launcher); null: as the job says (a constant, a job
 * input, a plain step's output).
 */
export type QueuedSource = { step: string; output: string } | { list: { step: string; output: string }[] } | null;

export interface QueuedStep {
  v: 1;
  spec: StepSpec;
  /** Absent: the queue worker runs the step itself. */
  launch?: LaunchConfig;
  /** Per input, for copies and collecting steps only. */
  sources?: QueuedSource[];
}

export const queuedStepSchema = lazySchemas((z) =>
  z
    .object({
      v: z.literal(1),
      spec: z
        .object({
          runId: z.string().min(1).max(256),
          module: z.string().min(1),
          jobName: z.string().min(1),
          stepKey: z.string().min(1),
          attempt: z.number().int().min(0),
          retries: z.boolean(),
          runConfig: z.object({ ops: z.record(z.string(), z.unknown()).optional() }).loose(),
          opSelection: z.array(z.string().min(1)).optional(),
        })
        .strict(),
      launch: launchConfig().optional(),
      sources: z
        .array(
          z.union([
            z.object({ step: z.string().min(1), output: z.string().min(1) }).strict(),
            z.object({ list: z.array(z.object({ step: z.string().min(1), output: z.string().min(1) }).strict()) }).strict(),
            z.null(),
          ]),
        )
        .optional(),
    })
    .strict(),
);

export type QueuedStepParsed = z.infer<ReturnType<typeof queuedStepSchema>>;
