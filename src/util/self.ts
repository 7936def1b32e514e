/**
 * Where this copy of weft runs from: its TypeScript sources (a checkout, run
 * through tsx or vitest) or the compiled package (dist/, where most modules
 * live in shared chunks). Code that names another weft file at run time (a
 * file to fork, a task function for workers, the CLI to start) asks here, so
 * the name fits the tree it runs in.
 */
const HERE = import.meta.url;

/** true in a checkout run from sources, false in the compiled package. */
export const FROM_SOURCE = HERE.endsWith('.ts');

/** The root of this tree: src/ (sources), or dist/ (the package), whichever module of it asks. */
export const WEFT_ROOT = FROM_SOURCE ? new URL('../', HERE) : new URL(HERE.slice(0, HERE.lastIndexOf('/dist/') + '/dist/'.length));

/** The file: URL of a weft entry module by its path under src/, without extension: `weftModule('jobs/step/fork-main')`. */
export function weftModule(path: string): URL {
  return new URL(`${path}${FROM_SOURCE ? '.ts' : '.js'}`, WEFT_ROOT);
}

/** A file of the package outside src/ and dist/ (`examples/pi.ts`). */
export function packageFile(path: string): URL {
  return new URL(`../${path}`, WEFT_ROOT);
}

/** The CLI entry of this tree (`weft ...` is `node CLI_ENTRY ...`). */
export const CLI_ENTRY = new URL('cli/launch.mjs', WEFT_ROOT);

/** The command that runs this copy of weft's CLI: `[node, entry]`; append `step`, `worker ...`, etc. */
export function weftCommand(): [string, string] {
  return [process.execPath, decodeURIComponent(CLI_ENTRY.pathname)];
}
