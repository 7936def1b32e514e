/**
 * Packages weft loads on first use instead of with weft: a code location
 * imports `weft` for `op`, `job` and `Definitions`, and a step process (a
 * container, a pod) should not pay for the parser that checks inline
 * functions or for pretty logs on a terminal it does not have. Together
 * about 45 ms of every step process's start (bench/README.md, docker).
 */
import { createRequire } from 'node:module';

const load = createRequire(import.meta.url);

/** A package's CommonJS build, required the first time the returned function is called. */
export function lazyPackage<T>(name: string): () => T {
  let mod: T | undefined;
  return () => (mod ??= load(name) as T);
}
