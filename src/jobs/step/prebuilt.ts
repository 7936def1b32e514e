/**
 * Prebuilt code-location bundles for `weft step`: `weft bundle MODULE` (run
 * where the code lives, e.g. in an image's build) writes one file holding
 * the code location and the parts of weft it uses, and records it, with the
 * size and time of every source it was built from, in a manifest next to the
 * module (node_modules/.cache/weft/locations.json). `weft step` uses it when
 * every source is unchanged: one file loads in a fraction of the time of the
 * modules one by one (bench/README.md, docker). Anything else, and it imports
 * the module as usual. Only the file system here: step processes load this.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** [path, size, modification time in ms] of a source a bundle was built from. */
export type FileStamp = [string, number, number];

export interface ManifestEntry {
  /** The bundle's file name, in the manifest's directory. */
  file: string;
  inputs: FileStamp[];
}

const MANIFEST = 'locations.json';

/** Where a code location's bundles go: node_modules/.cache/weft beside its module (packages then resolve as from the module). */
export function bundleDir(moduleUrl: string): string {
  return join(dirname(fileURLToPath(moduleUrl)), 'node_modules', '.cache', 'weft');
}

export function fileStamp(path: string): FileStamp {
  try {
    const s = statSync(path);
    return [path, s.size, s.mtimeMs];
  } catch {
    return [path, -1, -1];
  }
}

function readManifest(dir: string): Record<string, ManifestEntry> {
  try {
    const parsed = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as unknown;
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, ManifestEntry>) : {};
  } catch {
    return {};
  }
}

export function writeManifestEntry(dir: string, moduleUrl: string, entry: ManifestEntry): void {
  mkdirSync(dir, { recursive: true });
  const manifest = { ...readManifest(dir), [moduleUrl]: entry };
  // Written under a temporary name and renamed: a step never reads half a manifest.
  const tmp = join(dir, `${MANIFEST}.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(manifest, null, 1));
  renameSync(tmp, join(dir, MANIFEST));
}

/** The file: URL of a prebuilt bundle of the code location whose sources are all unchanged, or null. */
export function prebuiltLocation(moduleUrl: string): string | null {
  if (!moduleUrl.startsWith('file:')) return null;
  const dir = bundleDir(moduleUrl);
  const entry = readManifest(dir)[moduleUrl];
  if (!entry || typeof entry.file !== 'string' || !Array.isArray(entry.inputs)) return null;
  const file = join(dir, entry.file);
  if (!existsSync(file)) return null;
  for (const stamp of entry.inputs) {
    if (!Array.isArray(stamp) || typeof stamp[0] !== 'string') return null;
    const [, size, time] = fileStamp(stamp[0]);
    if (size !== stamp[1] || time !== stamp[2]) return null;
  }
  return pathToFileURL(file).href;
}
