/** What a queued step's BullMQ job carries, checked by the worker that takes it. */
import type { z } from 'zod';
import { lazySchemas } from '../../util/zod.ts';
import type { StepSpec } from '../step/spec.ts';

export interface QueuedStep {
  v: 1;
  spec: StepSpec;
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
        })
        .strict(),
    })
    .strict(),
);

export type QueuedStepParsed = z.infer<ReturnType<typeof queuedStepSchema>>;
