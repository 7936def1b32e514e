/**
 * The default executor: multiprocess unless the run config says
 * `execution: { config: { in_process: {} } }`.
 */
import type { z } from 'zod';
import { lazySchemas } from '../../util/zod.ts';
import { executor, type ExecutorDefinition } from '../executor.ts';
import { inProcessConfig, inProcessExecutor } from './in-process.ts';
import { multiprocessConfig, multiprocessExecutor } from './multiprocess.ts';
import { registerDefaultExecutor } from '../repository.ts';

export const multiOrInProcessConfig = lazySchemas((z) => {
  const mp = multiprocessConfig();
  const ip = inProcessConfig();
  return z.union([z.object({ multiprocess: mp.default(mp.parse({})) }).strict(), z.object({ in_process: ip.default(ip.parse({})) }).strict()]).default({ multiprocess: mp.parse({}) });
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

registerDefaultExecutor(multiOrInProcessExecutor as ExecutorDefinition);
