/**
 * zod, loaded the first time weft builds a schema rather than when weft is
 * imported: a code location imports `weft` for `op`, `job` and
 * `Definitions`, and a step's process (a container, a pod) should not pay
 * about 35 ms to load zod and build every message and config schema it never
 * uses (bench/README.md, docker). Modules build their schemas in a function
 * given to `lazySchemas`, called once, on first use.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type * as Zod from 'zod';
import { lazyPackage } from './lazy.ts';
import type { ZOD_PARTS } from './zod-parts.ts';

/** The `z` weft's schemas are built with: the parts of zod's that the package carries. */
export type WeftZod = Pick<typeof Zod.z, (typeof ZOD_PARTS)[number]>;

/**
 * zod in one file, built with the package by scripts/build.mjs from the
 * parts weft uses (zod-parts.ts): it adds about 37M instructions to a
 * process's start where zod's own files add 250M (16 against 55 ms on this
 * machine); a checkout uses the package.
 */
const bundled = fileURLToPath(new URL('../vendor/zod.cjs', import.meta.url));
const zod = lazyPackage<{ z: WeftZod }>(existsSync(bundled) ? bundled : 'zod');

/** Schemas built by `build` (given zod's `z`) the first time they are asked for. */
export function lazySchemas<T>(build: (z: WeftZod) => T): () => T {
  let built: T | undefined;
  return () => (built ??= build(zod().z));
}
