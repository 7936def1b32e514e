// Builds the package: TypeScript sources to dist/ (JavaScript, declarations,
// source maps), plus the .mjs launchers, which run before tsx is available,
// and `weft step` as one file (dist/cli/step.mjs): it starts in every step's
// container, where loading ws, msgpackr and zod as one bundle instead of a
// hundred files halves what weft adds to a container's start.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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

const { build } = await import('esbuild');
const stepCommand = join(dist, 'cli', 'step-command.js');
/** Modules weft imports on demand (executors, the run loop) stay outside: a step never loads them. */
const onDemandOutside = {
  name: 'weft-on-demand-outside',
  setup(b) {
    b.onResolve({ filter: /^\./ }, (args) => {
      if (args.kind !== 'dynamic-import' || args.importer === stepCommand) return undefined;
      const target = join(dirname(args.importer), args.path);
      return { path: `./${relative(join(dist, 'cli'), target)}`, external: true };
    });
  },
};
await build({
  entryPoints: [stepCommand],
  outfile: join(dist, 'cli', 'step.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
  // Loaded on demand, or optional native parts: left to resolve from the package.
  external: ['tsx', 'tsx/*', 'esbuild', 'msgpackr-extract', 'bufferutil', 'utf-8-validate'],
  plugins: [onDemandOutside],
  banner: { js: "import { createRequire as __weftRequire } from 'node:module'; const require = __weftRequire(import.meta.url);" },
});

// zod as one file, for the modules that load it on first use (util/zod.ts):
// the parts of its `z` that weft's schemas use (util/zod-parts.ts), built
// from zod's ES modules so that esbuild leaves out every part no schema of
// weft's reaches: JSON Schema, the ISO formats, codecs, and the translations
// of its error messages but English. A user's own schemas come from the
// user's zod. Under callgrind a process that loads it runs 122M
// instructions, against 335M with zod's own ~300 files and 209M with all of
// zod in one file (a bare node: 85M).
const { ZOD_PARTS } = await import(join(dist, 'util', 'zod-parts.js'));
const zodEntry = `import { ${ZOD_PARTS.map((p, i) => `${p} as p${i}`).join(', ')} } from 'zod';\nexport const z = { ${ZOD_PARTS.map((p, i) => `${JSON.stringify(p)}: p${i}`).join(', ')} };\n`;
await build({ stdin: { contents: zodEntry, resolveDir: root, loader: 'js' }, outfile: join(dist, 'vendor', 'zod.cjs'), bundle: true, minify: true, platform: 'node', format: 'cjs', target: 'node20', logLevel: 'warning' });

// The example's task module as JavaScript: `weft example` from the package runs without tsx.
await build({ entryPoints: [join(root, 'examples', 'pi.ts')], outfile: join(dist, 'examples', 'pi.js'), format: 'esm', platform: 'node', target: 'node20', logLevel: 'warning' });

// The dashboard's browser code, bundled once here (the scheduler serves this file; a checkout bundles on first request).
const { bundleDashboard } = await import(join(dist, 'scheduler', 'dashboard', 'assets.js'));
mkdirSync(join(dist, 'dashboard'), { recursive: true });
writeFileSync(join(dist, 'dashboard', 'app.js'), await bundleDashboard(join(src, 'dashboard', 'app.tsx')));
