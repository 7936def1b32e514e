/**
 * The default executor: multiprocess unless the run config says
 * `execution: { config: { in_process: {} } }`.
 */
import type { z } from 'zod';
import { lazySchemas } from '../../util/zod.ts';
import { executor, type ExecutorDefinition } from '../executor.ts';
import { inProcessConfig, inProcessExecutor } from './in-process.ts';
import { multiprocessConfig, multiprocessExecutor } from './multiprocess.ts';

/**
 * `{ multiprocess: {...} }` or `{ in_process: {...} }` (default: multiprocess).
 * One object with both keys optional, not a union: a mistake inside either
 * is then reported at its path, and an unknown key with the two allowed.
 */
export const multiOrInProcessConfig = lazySchemas((z) => {
  const mp = multiprocessConfig();
  const ip = inProcessConfig();
  return z
    .object({ multiprocess: mp.optional(), in_process: ip.optional() })
    .strict()
    .default({})
    .refine((c) => c.multiprocess === undefined || c.in_process === undefined, 'set multiprocess or in_process, not both')
    .transform((c): { multiprocess: z.infer<typeof mp> } | { in_process: z.infer<typeof ip> } => (c.in_process !== undefined ? { in_process: c.in_process } : { multiprocess: c.multiprocess ?? mp.parse({}) }));
});
export type MultiOrInProcessConfig = z.infer<ReturnType<typeof multiOrInProcessConfig>>;

export const multiOrInProcessExecutor: ExecutorDefinition<MultiOrInProcessConfig> = executor(
  { name: 'multi_or_in_process', configSchema: multiOrInProcessConfig, requirements: (c) => ('in_process' in c ? [] : ['reconstructable-job']) },
  (init) => {
    const c = init.config;
    if ('in_process' in c) return inProcessExecutor.create({ ...init, config: c.in_process });
    return multiprocessExecutor.create({ ...init, config: c.multiprocess });
  },
);
