/**
 * Where this copy of weft runs from: its TypeScript sources (a checkout, run
 * through tsx or vitest) or the compiled JavaScript of the package (dist/).
 * Code that names another weft module at run time (a file to fork, a task
 * function for workers, the CLI to start) asks here, so the name fits the
 * tree it runs in.
 */
const EXT = import.meta.url.endsWith('.ts') ? '.ts' : '.js';

/** true in a checkout run from sources, false in the compiled package. */
export const FROM_SOURCE = EXT === '.ts';

/** The file: URL of a weft module by its path under src/, without extension: `weftModule('jobs/step/fork-main')`. */
export function weftModule(path: string): URL {
  return new URL(`../${path}${EXT}`, import.meta.url);
}

/** The CLI entry of this tree (`weft ...` is `node CLI_ENTRY ...`). */
export const CLI_ENTRY = new URL('../cli/launch.mjs', import.meta.url);

let tsx: Promise<void> | null = null;

/**
 * Imports a user's module (a code location, a task module). The compiled
 * package loads TypeScript through tsx, registered on the first TypeScript
 * module (about 90 ms), so programs whose modules are JavaScript never pay
 * for it. From sources tsx (or vitest) is already in place.
 */
export async function importUserModule(url: string): Promise<Record<string, unknown>> {
  if (!FROM_SOURCE && /\.[cm]?tsx?$/.test(url.split(/[?#]/)[0] ?? '')) {
    tsx ??= import('tsx/esm/api').then((m) => void m.register());
    await tsx;
  }
  return (await import(url)) as Record<string, unknown>;
}

/** The command that runs this copy of weft's CLI: `[node, entry]`; append `step`, `worker ...`, etc. */
export function weftCommand(): [string, string] {
  return [process.execPath, decodeURIComponent(CLI_ENTRY.pathname)];
}
