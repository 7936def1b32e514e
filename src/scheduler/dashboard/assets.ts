/**
 * The dashboard's browser code: src/dashboard, bundled by esbuild into one
 * script. The package ships it built (scripts/build.mjs writes
 * dist/dashboard/app.js); a checkout running its TypeScript sources bundles
 * it on first request, once. Nothing is fetched from anywhere at run time.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { optionalPackage } from '../../util/optional.ts';

let script: Promise<string> | null = null;

/** The bundled script (a promise shared by every request). */
export function dashboardScript(): Promise<string> {
  script ??= load().catch((err: unknown) => {
    script = null; // a later request tries again
    throw err;
  });
  return script;
}

async function load(): Promise<string> {
  const built = new URL('../../dashboard/app.js', import.meta.url);
  if (existsSync(built)) return readFile(built, 'utf8');
  return bundleDashboard(fileURLToPath(new URL('../../dashboard/app.tsx', import.meta.url)));
}

/** Bundles the dashboard from its entry (also used by the package build, to write it to a file). */
export async function bundleDashboard(entry: string): Promise<string> {
  const { build } = await optionalPackage(['esbuild', 'preact'], 'bundling the dashboard from its sources', () => import('esbuild'));
  const out = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'esm',
    target: 'es2022',
    minify: true,
    jsx: 'automatic',
    jsxImportSource: 'preact',
    legalComments: 'none',
    logLevel: 'silent',
  });
  const file = out.outputFiles[0];
  if (!file) throw new Error('esbuild produced no dashboard script');
  return file.text;
}
