/**
 * Step processes start from one JavaScript file: the code location and the
 * parts of weft it uses, bundled with esbuild when a run starts. A step
 * process then needs no TypeScript loader and loads only what the job uses,
 * so it starts nearly as fast as a bare `node`.
 *
 * The bundle goes to `node_modules/.cache/weft/` next to the code location,
 * so packages resolve from it as they do from the code location itself;
 * packages stay outside the bundle (weft's own sources are bundled).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, existsSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Plugin } from 'esbuild';
import { SourceMap } from 'node:module';
import { JobReconstructionError } from '../errors.ts';
import { FROM_SOURCE, WEFT_ROOT, weftModule } from '../../util/self.ts';
import { bundleDir, fileStamp, writeManifestEntry } from './prebuilt.ts';
import { MissingPackageError, optionalPackage } from '../../util/optional.ts';

const STEP_MAIN = fileURLToPath(weftModule('jobs/step/fork-main'));
const STEP_PRELUDE = fileURLToPath(weftModule('jobs/step/prelude'));
const FORK_ENTRY = weftModule('jobs/step/fork-entry');
const WEFT_SRC = fileURLToPath(WEFT_ROOT);
/** weft's package: its sources and its build (a code location may import either). */
const WEFT_PACKAGE = fileURLToPath(new URL('../', WEFT_ROOT));

/**
 * Packages stay external, except weft itself (TypeScript sources a step
 * process could not load). Modules weft imports on demand (executors, the
 * code-location loader) are left out: a step process never needs them, and
 * bundling them would load their packages (zod) at every start. A package
 * weft's own files import is imported from where weft resolves it (a file:
 * URL), not by name from the code location: weft's dependencies need not be
 * in the project's node_modules (a linked weft, pnpm).
 */
const OWN = Symbol('weft-own-resolution');
const externals: Plugin = {
  name: 'weft-step-externals',
  setup(b) {
    b.onResolve({ filter: /.*/ }, async (args) => {
      if (args.pluginData === OWN) return undefined;
      const bare = !args.path.startsWith('.') && !args.path.startsWith('/');
      if (!bare && args.kind === 'dynamic-import' && args.importer.startsWith(WEFT_SRC)) return { path: args.path, external: true };
      if (!bare || args.path === 'weftjs' || args.path.startsWith('weftjs/')) return undefined;
      if (args.importer.startsWith(WEFT_PACKAGE) && !args.path.startsWith('node:')) {
        const r = await b.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: OWN });
        if (r.errors.length === 0 && r.path.startsWith('/')) return { path: pathToFileURL(r.path).href, external: true };
      }
      return { path: args.path, external: true };
    });
  },
};

interface Built {
  url: string;
  /** The bundle's source map, for stack traces (step processes run without source-map support, which costs start-up time). */
  map: SourceMap;
  /** Every source file in the bundle, with its modification time when it was built. */
  inputs: [string, number][];
}

const built = new Map<string, Promise<Built>>();

/**
 * Builds the step-process bundle of a code location, or reuses the last one
 * while none of its source files changed; returns its file: URL.
 */
export async function stepBundle(moduleUrl: string): Promise<string> {
  const last = built.get(moduleUrl);
  if (last) {
    const b = await last.catch(() => null);
    if (b && b.inputs.every(([f, t]) => mtime(f) === t)) return b.url;
  }
  const p = buildBundle(moduleUrl);
  built.set(moduleUrl, p);
  p.catch(() => built.delete(moduleUrl));
  return (await p).url;
}

/** How a step process of the multiprocess executor starts: `node [execArgv] file args`. */
export interface StepEntry {
  file: string;
  args: string[];
  execArgv: string[];
  /** Why it is not the bundle, for the run's log. */
  note: string | null;
}

/**
 * The code location's bundle (stepBundle), or, where esbuild is not
 * installed, fork-entry.ts, which imports the code location unbundled.
 */
export async function stepEntry(moduleUrl: string): Promise<StepEntry> {
  try {
    return { file: fileURLToPath(await stepBundle(moduleUrl)), args: [], execArgv: [], note: null };
  } catch (err) {
    if (!(err instanceof JobReconstructionError && err.cause instanceof MissingPackageError)) throw err;
    return {
      file: fileURLToPath(FORK_ENTRY),
      args: [moduleUrl],
      // From sources, the entry itself is TypeScript.
      execArgv: FROM_SOURCE ? ['--import', 'tsx'] : [],
      note: `esbuild is not installed, so step processes import the code location module by module, which starts them slower than a bundle: npm install esbuild`,
    };
  }
}

function mtime(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

/**
 * What a bundle starts with: a forked step process's entry (`steps`), or the
 * code location alone, exported as `location` (`location`: for `weft step`,
 * see prebuilt.ts).
 */
type BundleKind = 'steps' | 'location';

async function buildBundle(moduleUrl: string, kind: BundleKind = 'steps'): Promise<Built> {
  const modulePath = fileURLToPath(moduleUrl);
  const dir = bundleDir(moduleUrl);
  const entry =
    kind === 'steps'
      ? `import ${JSON.stringify(STEP_PRELUDE)};\nimport * as location from ${JSON.stringify(modulePath)};\nimport { startStepProcess } from ${JSON.stringify(STEP_MAIN)};\nstartStepProcess(() => Promise.resolve(location), ${JSON.stringify(moduleUrl)});\n`
      : `import ${JSON.stringify(STEP_PRELUDE)};\nimport * as location from ${JSON.stringify(modulePath)};\nexport { location };\n`;
  let code: Uint8Array;
  let inputs: [string, number][];
  let map: SourceMap;
  try {
    // Loaded here, not at the top: only a parent starting step processes needs esbuild.
    const { build } = await optionalPackage(['esbuild'], 'weft bundle', () => import('esbuild'));
    const out = await build({
      stdin: { contents: entry, resolveDir: dirname(modulePath), sourcefile: 'weft-step-entry.ts', loader: 'ts' },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: `node${process.versions.node}`,
      write: false,
      sourcemap: 'external',
      outfile: join(dir, `${kind}.mjs`),
      logLevel: 'silent',
      plugins: [externals],
      // Packages loaded with require() inside ESM need a require function.
      metafile: true,
      banner: { js: "import { createRequire as __weftRequire } from 'node:module'; const require = __weftRequire(import.meta.url);" },
    });
    const js = out.outputFiles.find((f) => f.path.endsWith('.mjs'));
    const mapFile = out.outputFiles.find((f) => f.path.endsWith('.map'));
    if (!js || !mapFile) throw new Error('esbuild returned no bundle');
    code = js.contents;
    map = new SourceMap(JSON.parse(mapFile.text) as ConstructorParameters<typeof SourceMap>[0]);
    const root = process.cwd();
    inputs = Object.keys(out.metafile.inputs)
      .filter((f) => !f.startsWith('<'))
      .map((f) => {
        const abs = resolve(root, f);
        return [abs, mtime(abs)] as [string, number];
      });
  } catch (err) {
    throw new JobReconstructionError(`cannot prepare ${moduleUrl} for step processes: ${(err as Error).message}`, { cause: err });
  }
  const hash = createHash('sha1').update(code).digest('hex').slice(0, 16);
  const file = join(dir, `${kind}-${hash}.mjs`);
  if (!existsSync(file)) {
    try {
      mkdirSync(dir, { recursive: true });
      // Written under a temporary name and renamed: concurrent runs never see half a file.
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, code);
      renameSync(tmp, file);
    } catch (err) {
      throw new JobReconstructionError(`cannot write the step-process bundle of ${moduleUrl} to ${dir}: ${(err as Error).message}. Step processes need that directory writable (or run the job in-process).`);
    }
  }
  const url = pathToFileURL(file).href;
  maps.set(url, map);
  return { url, map, inputs };
}

const maps = new Map<string, SourceMap>();

/**
 * Builds the bundle `weft step` uses for a code location instead of
 * importing it (`weft bundle MODULE`, in an image's build): the code
 * location and the parts of weft it uses in one file, which loads in a
 * fraction of the time its modules take one by one. Recorded in the
 * manifest with its inputs, so that a changed source makes it unused.
 */
export async function buildLocationBundle(moduleUrl: string): Promise<string> {
  const b = await buildBundle(moduleUrl, 'location');
  const file = fileURLToPath(b.url);
  const inputs = b.inputs.map(([f]) => fileStamp(f));
  writeManifestEntry(bundleDir(moduleUrl), moduleUrl, { file: basename(file), inputs });
  return file;
}

/**
 * A stack trace from a step process with bundle positions turned back into
 * the source files' (`at f (file:///.../defs.ts:12:9)`).
 */
export function mapStack(stack: string | undefined): string | undefined {
  if (!stack || maps.size === 0) return stack;
  return stack.replace(/(file:\/\/[^\s)]+?steps-[0-9a-f]+\.mjs):(\d+):(\d+)/g, (whole, url: string, line: string, col: string) => {
    const m = maps.get(url);
    const e = m?.findEntry(Number(line) - 1, Number(col) - 1) as { originalSource?: string; originalLine?: number; originalColumn?: number } | undefined;
    if (!e?.originalSource || e.originalLine === undefined || e.originalColumn === undefined) return whole;
    const src = e.originalSource.startsWith('file:') ? e.originalSource : pathToFileURL(resolve(dirname(fileURLToPath(url)), e.originalSource)).href;
    return `${src}:${e.originalLine + 1}:${e.originalColumn + 1}`;
  });
}
