// Builds the package: TypeScript sources to dist/ (JavaScript, declarations,
// source maps), plus the .mjs launchers, which run before tsx is available.
import { execFileSync } from 'node:child_process';
import { copyFileSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
for (const entry of readdirSync(src, { recursive: true, withFileTypes: true })) {
  if (entry.isFile() && entry.name.endsWith('.mjs')) {
    const from = join(entry.parentPath, entry.name);
    copyFileSync(from, join(dist, relative(src, from)));
  }
}
