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

/** zod in one file, built with the package by scripts/build.mjs: it loads in about 40% of the time zod's own files take (113 against 46 ms over a bare node here); a checkout uses the package. */
const bundled = fileURLToPath(new URL('../vendor/zod.cjs', import.meta.url));
const zod = lazyPackage<typeof Zod>(existsSync(bundled) ? bundled : 'zod');

/** Schemas built by `build` (given zod's `z`) the first time they are asked for. */
export function lazySchemas<T>(build: (z: typeof Zod.z) => T): () => T {
  let built: T | undefined;
  return () => (built ??= build(zod().z));
}
