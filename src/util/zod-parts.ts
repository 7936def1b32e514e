/**
 * The parts of zod's `z` that weft's own schemas use. The zod that the
 * package carries (dist/vendor/zod.cjs, scripts/build.mjs) is built from
 * these and what they need, and nothing else: loading it adds about 37M
 * instructions to a process, all of zod in one file 124M (scripts/build.mjs
 * says how it was measured). `lazySchemas` hands its schemas
 * a `z` typed with these parts only, so a schema that needs another part
 * does not compile until it is added here.
 */
export const ZOD_PARTS = [
  'array',
  'boolean',
  'custom',
  'discriminatedUnion',
  'enum',
  'instanceof',
  'literal',
  'looseObject',
  'NEVER',
  'null',
  'number',
  'object',
  'optional',
  'record',
  'strictObject',
  'string',
  'tuple',
  'union',
  'unknown',
] as const;
