/**
 * Config errors a user can act on: the path, the allowed keys, the key that
 * was probably meant or the object a key belongs in, and no key dropped
 * without a word (op configs are plain z.objects, which strip).
 */
import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { Definitions, inProcessExecutor, job, op, queueExecutor, RunConfigError, type RunConfig } from '../src/index.ts';
import { resolveRunConfig } from '../src/jobs/run-config.ts';
import { multiOrInProcessExecutor } from '../src/jobs/executors/default.ts';
import type { ExecutorDefinition } from '../src/jobs/executor.ts';

const scaled = op({ name: 'scaled', config: z.object({ factor: z.number(), opts: z.object({ round: z.boolean() }).optional(), items: z.array(z.object({ size: z.number() })).default([]) }) }, (ctx) => ctx.config.factor);
const loose = op({ name: 'loose', config: z.object({ a: z.number() }).loose() }, (ctx) => ctx.config);
const j = job({ name: 'j' }, () => {
  scaled();
  loose();
});
const ops = { scaled: { config: { factor: 2 } }, loose: { config: { a: 1 } } };

/** The issues resolveRunConfig reports for `runConfig` under the executor, as `path: message` lines. */
function issues(runConfig: unknown, exec: ExecutorDefinition = multiOrInProcessExecutor as ExecutorDefinition): string[] {
  try {
    resolveRunConfig(j, exec, runConfig as RunConfig);
    return [];
  } catch (err) {
    expect(err).toBeInstanceOf(RunConfigError);
    return (err as RunConfigError).issues.map((i) => `${i.path}: ${i.message}`);
  }
}

describe('config errors', () => {
  it('in the default executor: the path inside multiprocess, a key one level too high, a typo, with the allowed keys', () => {
    expect(issues({ ops, execution: { config: { multiprocess: { maxConcurrent: '2' } } } })).toEqual(['execution.config.multiprocess.maxConcurrent: Invalid input: expected number, received string']);
    expect(issues({ ops, execution: { config: { maxConcurrent: 2 } } })).toEqual([
      'execution.config: unknown key "maxConcurrent" (it belongs under "multiprocess": { multiprocess: { maxConcurrent: ... } }); allowed: multiprocess, in_process',
    ]);
    expect(issues({ ops, execution: { config: { multiproces: {} } } })).toEqual(['execution.config: unknown key "multiproces" (did you mean "multiprocess"?); allowed: multiprocess, in_process']);
    expect(issues({ ops, execution: { config: { multiprocess: { maxConcurent: 2 } } } })[0]).toMatch(/^execution\.config\.multiprocess: unknown key "maxConcurent" \(did you mean "maxConcurrent"\?\); allowed: maxConcurrent, tagConcurrencyLimits, .*startAhead/);
    expect(issues({ ops, execution: { config: { multiprocess: {}, in_process: {} } } })).toEqual(['execution.config: set multiprocess or in_process, not both']);
    expect(issues({ ops, execution: { config: { in_process: {} } } })).toEqual([]);
  });

  it('op config refuses keys its schema would drop, at any depth, and lets a loose object keep them', () => {
    expect(issues({ ops: { ...ops, scaled: { config: { factor: 2, facter: 3 } } } })).toEqual(['ops.scaled.config: unknown key "facter" (did you mean "factor"?); allowed: factor, opts, items']);
    expect(issues({ ops: { ...ops, scaled: { config: { factor: 2, opts: { round: true, rund: 1 }, items: [{ size: 1, sise: 2 }] } } } })).toEqual([
      'ops.scaled.config.opts: unknown key "rund" (did you mean "round"?); allowed: round',
      'ops.scaled.config.items.0: unknown key "sise" (did you mean "size"?); allowed: size',
    ]);
    expect(issues({ ops: { ...ops, loose: { config: { a: 1, b: 2 } } } })).toEqual([]);
  });

  it('reports every issue at once, each on its own line', async () => {
    const defs = new Definitions({ jobs: [job({ name: 'k', executorDef: inProcessExecutor }, () => scaled())] });
    const err = (await defs.executeJob('k', { runConfig: { opps: {}, ops: { scaled: { config: { factor: 'x' } } } } as RunConfig }).catch((e: unknown) => e)) as Error;
    expect(err.message).toBe('invalid run config:\n  - (root): unknown key "opps" (did you mean "ops"?); allowed: ops, execution\n  - ops.scaled.config.factor: Invalid input: expected number, received string');
  });

  it("an executor's own refusals name the field", () => {
    expect(issues({ ops, execution: { config: { startAhead: true } } }, queueExecutor.configured({ redis: 'redis://127.0.0.1:1/0' }) as ExecutorDefinition)).toEqual([
      'execution.config.startAhead: the queue executor queues each step once it is ready; it cannot start steps ahead',
    ]);
  });
});
