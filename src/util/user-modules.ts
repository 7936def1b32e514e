/**
 * Importing users' modules (task modules, code locations), and noticing when
 * their code changes on disk.
 *
 * A process imports a module once: a worker, a queue worker or a warm step
 * process would run the code it first imported forever. One that calls
 * `followUserModules` learns which files each user module loaded (hooks in
 * module-hooks.mjs report them), watches them (inotify: nothing is polled,
 * nothing costs a task), and imports a module whose files changed anew on
 * its next use, under `?weft-version=N`, which the hooks pass on to the
 * user files it imports. Tasks and steps started after that use the new
 * code; one already running finishes on the old. Each reload is reported
 * through the callback, for the process's log. Old versions stay in memory
 * (a module cannot be unloaded): a development convenience, not a way to
 * deploy.
 *
 * Modules under node_modules and weft itself are never reloaded. Processes
 * that run one step and exit (`weft step`, isolated step processes) do not
 * follow: they import the code as it is when they start.
 */
import { statSync, watch, type FSWatcher } from 'node:fs';
import { register } from 'node:module';
import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import { optionalPackage } from './optional.ts';
import { FROM_SOURCE, WEFT_ROOT } from './self.ts';

let tsx: Promise<void> | null = null;

/**
 * The compiled package loads TypeScript through tsx (an optional peer
 * dependency), registered in this thread on its first TypeScript module
 * (about 90 ms), so programs whose modules are JavaScript never pay for it,
 * nor install it. From sources tsx (or vitest) is already in place.
 */
async function registerTypeScript(url: string): Promise<void> {
  if (FROM_SOURCE || !/\.[cm]?tsx?$/.test(url.split(/[?#]/)[0] ?? '')) return;
  tsx ??= optionalPackage(['tsx'], `loading the TypeScript module ${url.split(/[?#]/)[0] ?? url}`, () => import('tsx/esm/api')).then(
    (m) => void m.register(),
    (err: unknown) => {
      tsx = null;
      throw err;
    },
  );
  await tsx;
}

export interface ModuleReload {
  /** The module imported anew (its URL as first imported). */
  module: string;
  /** The file whose change was noticed. */
  file: string;
  /** The module's version from now on (1 for the first reload). */
  version: number;
}

interface Root {
  url: string;
  /** The module file's modification time when it was imported (-1: unknown). */
  mtime: number;
  version: number;
  mod: Promise<Record<string, unknown>>;
  /** The changed file, once one of its files changed: imported anew on its next use. */
  stale: string | null;
  files: Set<string>;
}

/** What this thread knows of its users' modules, once it follows them. */
class Follower {
  /** Importer file to the user files it imports (every version seen). */
  private readonly edges = new Map<string, Set<string>>();
  private readonly roots = new Map<string, Root>();
  private readonly rootsOf = new Map<string, Set<Root>>();
  private readonly watchers = new Map<string, FSWatcher>();
  /** Grows with every change noticed. */
  generation = 0;

  constructor(private readonly onReload: (r: ModuleReload) => void) {
    const { port1, port2 } = new MessageChannel();
    port1.on('message', ([parent, child]: [string, string]) => this.edge(parent, child));
    port1.unref();
    register(new URL('util/module-hooks.mjs', WEFT_ROOT), { data: { port: port2, weftRoot: WEFT_ROOT.href }, transferList: [port2] });
  }

  async import(url: string): Promise<Record<string, unknown>> {
    const key = url.split(/[?#]/)[0] ?? url;
    let r = this.roots.get(key);
    if (r && r.stale === null) return r.mod;
    if (!r) {
      r = { url, mtime: mtimeOf(url), version: 0, mod: load(url), stale: null, files: new Set() };
      this.roots.set(key, r);
    } else {
      const file = r.stale as string;
      r.stale = null;
      r.mtime = mtimeOf(url);
      r.version++;
      const u = new URL(url);
      u.searchParams.set('weft-version', String(r.version));
      r.mod = load(u.href);
      this.onReload({ module: url, file, version: r.version });
    }
    this.add(r, pathOf(url));
    const root = r;
    // A module that failed to import is imported again on its next use.
    r.mod.catch(() => this.roots.get(key) === root && this.roots.delete(key));
    return r.mod;
  }

  /** Whether the module file changed since it was imported, whatever its watcher said so far. */
  refresh(url: string): void {
    const r = this.roots.get(url.split(/[?#]/)[0] ?? url);
    const file = pathOf(url);
    if (r && r.stale === null && file !== null && mtimeOf(url) !== r.mtime) this.changed(file);
  }

  private edge(parent: string, child: string): void {
    const p = pathOf(parent);
    const c = pathOf(child);
    if (p === null || c === null) return;
    let kids = this.edges.get(p);
    if (!kids) this.edges.set(p, (kids = new Set()));
    kids.add(c);
    for (const r of this.rootsOf.get(p) ?? []) this.add(r, c);
  }

  /** `file` is one of the root's: watched, with every file it is known to import. */
  private add(r: Root, file: string | null): void {
    if (file === null) return;
    this.watch(file);
    if (r.files.has(file)) return;
    r.files.add(file);
    let rs = this.rootsOf.get(file);
    if (!rs) this.rootsOf.set(file, (rs = new Set()));
    rs.add(r);
    for (const c of this.edges.get(file) ?? []) this.add(r, c);
  }

  private watch(file: string): void {
    if (this.watchers.has(file)) return;
    try {
      // An editor that saves by renaming replaces the file: the watcher is done after its first event either way.
      const w = watch(file, { persistent: false }, () => this.changed(file));
      w.on('error', () => this.changed(file));
      this.watchers.set(file, w);
    } catch {
      // Gone already, or not watchable: its importers are not followed through it.
    }
  }

  /** The file changed, whether or not its watcher said so yet. */
  changed(file: string): void {
    this.watchers.get(file)?.close();
    this.watchers.delete(file);
    let any = false;
    for (const r of this.rootsOf.get(file) ?? []) {
      if (r.stale === null) {
        r.stale = file;
        any = true;
      }
    }
    if (any) this.generation++;
  }
}

function pathOf(url: string): string | null {
  if (!url.startsWith('file:')) return null;
  try {
    return fileURLToPath(url.split(/[?#]/)[0] ?? url);
  } catch {
    return null;
  }
}

function mtimeOf(url: string): number {
  const file = pathOf(url);
  try {
    return file === null ? -1 : statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

async function load(url: string): Promise<Record<string, unknown>> {
  await registerTypeScript(url);
  return (await import(url)) as Record<string, unknown>;
}

let follower: Follower | null = null;

/**
 * From now on, this thread follows the user modules it imports: one whose
 * files changed is imported anew on its next use, and `onReload` is told.
 * Called once per thread (later calls change nothing).
 */
export function followUserModules(onReload: (r: ModuleReload) => void): void {
  follower ??= new Follower(onReload);
}

/** Imports a user's module: the version on disk now, where this thread follows its users' modules. */
export function importUserModule(url: string): Promise<Record<string, unknown>> {
  return follower ? follower.import(url) : load(url);
}

/**
 * A number that grows each time a followed module's files change (always 0
 * where none are followed): what is cached from users' modules (resolved
 * task functions, code locations) is taken again once it moved.
 */
export function userCodeGeneration(): number {
  return follower?.generation ?? 0;
}

/**
 * Tells this thread that the file of `url` changed, for a caller that knows
 * before the file's watcher says so (a run started on the new code): the
 * module is imported anew on its next use.
 */
export function userModuleChanged(url: string): void {
  const file = pathOf(url);
  if (follower && file !== null) follower.changed(file);
}

/**
 * Looks at the module file of `url` now (one stat): changed since it was
 * imported, it is imported anew on its next use. For work coarse enough to
 * pay a stat each time (a step), so that an edit just made is never missed
 * while its file watcher's word is on its way; the files it imports rely on
 * their watchers.
 */
export function refreshUserModule(url: string): void {
  follower?.refresh(url);
}

/** How a reload reads in a log. */
export function describeReload(r: ModuleReload, what: string): string {
  return `${what} ${r.module} changed (${r.file}): what starts from now on uses the new code (version ${r.version}); what runs finishes on the old`;
}
