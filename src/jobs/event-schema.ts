/**
 * The step events another process may send (a step task on the cluster, a
 * step process through the coordinator), checked as anything that comes
 * from outside this process. Built on first use (util/zod.ts).
 */
import { messageSchemas } from '../protocol/messages.ts';
import { lazySchemas } from '../util/zod.ts';

export const stepEventSchema = lazySchemas((z) =>
  z.object({
    type: z.enum(['STEP_START', 'STEP_OUTPUT', 'STEP_SUCCESS', 'STEP_FAILURE', 'STEP_UP_FOR_RETRY', 'STEP_RESTARTED', 'LOG']),
    runId: z.string(),
    stepKey: z.string(),
    timestamp: z.number(),
    message: z.string(),
    level: z.enum(['debug', 'info', 'warn', 'error']).optional(),
    data: z.record(z.string(), z.unknown()).optional(),
    error: messageSchemas().serializedError.optional(),
    output: z.string().optional(),
    /** STEP_OUTPUT from a step process: the value as msgpack. */
    bytes: z.instanceof(Uint8Array).optional(),
    /** STEP_OUTPUT: written to the run's output store where the step ran. */
    stored: z.boolean().optional(),
    attempt: z.number().int().nonnegative().optional(),
    retryInSeconds: z.number().nonnegative().optional(),
    pid: z.number().int().optional(),
  }),
);
