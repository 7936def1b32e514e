/**
 * weft.yaml, the instance's config in WEFT_HOME: which run storage and
 * output store its runs use, the run queue's limits and the run monitor's
 * timeout. Every field is optional; a mistake is reported with its path.
 *
 *   runStorage:
 *     postgres: { url: postgres://weft@db.internal:5432/weft }   # or sqlite: { path: runs.db }
 *   outputStore:
 *     fs: { root: /shared/weft-outputs }
 *   runQueue:
 *     maxConcurrentRuns: 10
 *     tagConcurrencyLimits:
 *       - { key: team, value: { applyLimitPerUniqueValue: true }, limit: 2 }
 *   runMonitor:
 *     heartbeatTimeout: 60s
 */
import { parseDuration } from '../util/duration.ts';
import { lazySchemas } from '../util/zod.ts';

/**
 * The config of an instance without weft.yaml. Written out (the schema's
 * defaults come from here) so that a command that only reads runs does not
 * load zod to learn them; a test checks the schema gives the same.
 */
export const DEFAULT_CONFIG = {
  runStorage: {},
  outputStore: { fs: { root: 'storage' } },
  runQueue: { maxConcurrentRuns: 10, tagConcurrencyLimits: [], dequeueInterval: 1000 },
  runMonitor: { heartbeatInterval: 5000, heartbeatTimeout: 60_000 },
} as const;

export const instanceConfigSchema = lazySchemas((z) => {
  const duration = (defMs: number) =>
    z
      .union([z.string(), z.number()])
      .default(defMs / 1000)
      .transform((v, ctx) => {
        const ms = parseDuration(v);
        if (ms === null || ms <= 0) {
          ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a duration (write 30s, 500ms, 2m)` });
          return z.NEVER;
        }
        return ms;
      });
  const sqlite = z.object({ path: z.string().min(1).default('runs.db') }).strict();
  const postgres = z.object({ url: z.string().regex(/^postgres(ql)?:\/\//, 'a postgres:// URL (the password may come from PGPASSWORD)') }).strict();
  const limit = z
    .object({
      key: z.string().min(1),
      value: z.union([z.string(), z.object({ applyLimitPerUniqueValue: z.literal(true) }).strict()]).optional(),
      limit: z.number().int().nonnegative(),
    })
    .strict();
  return z
    .object({
      runStorage: z
        .object({ sqlite: sqlite.optional(), postgres: postgres.optional() })
        .strict()
        .refine((c) => !(c.sqlite && c.postgres), 'choose sqlite or postgres, not both')
        .prefault({}),
      outputStore: z
        .object({ fs: z.object({ root: z.string().min(1).default(DEFAULT_CONFIG.outputStore.fs.root) }).strict().prefault({}) })
        .strict()
        .prefault({}),
      runQueue: z
        .object({
          maxConcurrentRuns: z.number().int().nonnegative().default(DEFAULT_CONFIG.runQueue.maxConcurrentRuns),
          tagConcurrencyLimits: z.array(limit).default([]),
          dequeueInterval: duration(DEFAULT_CONFIG.runQueue.dequeueInterval),
        })
        .strict()
        .prefault({}),
      runMonitor: z
        .object({
          heartbeatInterval: duration(DEFAULT_CONFIG.runMonitor.heartbeatInterval),
          heartbeatTimeout: duration(DEFAULT_CONFIG.runMonitor.heartbeatTimeout),
        })
        .strict()
        .refine((c) => c.heartbeatTimeout >= 2 * c.heartbeatInterval, 'heartbeatTimeout must be at least twice heartbeatInterval')
        .prefault({}),
    })
    .strict()
    .prefault({});
});

export type InstanceConfig = ReturnType<ReturnType<typeof instanceConfigSchema>['parse']>;
export type TagConcurrencyLimit = InstanceConfig['runQueue']['tagConcurrencyLimits'][number];
