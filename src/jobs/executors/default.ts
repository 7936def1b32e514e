/**
 * The default executor: multiprocess unless the run config says
 * `execution: { config: { in_process: {} } }`.
 */
import { z } from 'zod';
import { executor, type ExecutorDefinition } from '../executor.ts';
import { inProcessConfig, inProcessExecutor } from './in-process.ts';
import { multiprocessConfig, multiprocessExecutor } from './multiprocess.ts';
import { registerDefaultExecutor } from '../repository.ts';

export const multiOrInProcessConfig = z
  .union([z.object({ multiprocess: multiprocessConfig.default(multiprocessConfig.parse({})) }).strict(), z.object({ in_process: inProcessConfig.default(inProcessConfig.parse({})) }).strict()])
  .default({ multiprocess: multiprocessConfig.parse({}) });
export type MultiOrInProcessConfig = z.infer<typeof multiOrInProcessConfig>;

export const multiOrInProcessExecutor: ExecutorDefinition<MultiOrInProcessConfig> = executor(
  { name: 'multi_or_in_process', configSchema: multiOrInProcessConfig, requirements: (c) => ('in_process' in c ? [] : ['reconstructable-job']) },
  (init) => {
    const c = init.config;
    if ('in_process' in c) return inProcessExecutor.create({ ...init, config: c.in_process });
    return multiprocessExecutor.create({ ...init, config: c.multiprocess });
  },
);

registerDefaultExecutor(multiOrInProcessExecutor as ExecutorDefinition);
