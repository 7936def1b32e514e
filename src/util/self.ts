/**
 * Where this copy of weft runs from: its TypeScript sources (a checkout, run
 * through tsx or vitest) or the compiled package (dist/, where most modules
 * live in shared chunks). Code that names another weft file at run time (a
 * file to fork, a task function for workers, the CLI to start) asks here, so
 * the name fits the tree it runs in.
 */
import { optionalPackage } from './optional.ts';

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

let tsx: Promise<void> | null = null;

/**
 * Imports a user's module (a code location, a task module). The compiled
 * package loads TypeScript through tsx (an optional peer dependency),
 * registered in this thread on its first TypeScript module (about 90 ms), so
 * programs whose modules are JavaScript never pay for it, nor install it.
 * From sources tsx (or vitest) is already in place.
 */
export async function importUserModule(url: string): Promise<Record<string, unknown>> {
  if (!FROM_SOURCE && /\.[cm]?tsx?$/.test(url.split(/[?#]/)[0] ?? '')) {
    tsx ??= optionalPackage(['tsx'], `loading the TypeScript module ${url.split(/[?#]/)[0] ?? url}`, () => import('tsx/esm/api')).then(
      (m) => void m.register(),
      (err: unknown) => {
        tsx = null;
        throw err;
      },
    );
    await tsx;
  }
  return (await import(url)) as Record<string, unknown>;
}

/** The command that runs this copy of weft's CLI: `[node, entry]`; append `step`, `worker ...`, etc. */
export function weftCommand(): [string, string] {
  return [process.execPath, decodeURIComponent(CLI_ENTRY.pathname)];
}
