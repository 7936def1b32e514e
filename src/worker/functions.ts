/**
 * Turns a spec's function reference into a callable, once per reference.
 *
 * Module references (`./tasks.ts#inc`, `/abs/path.ts#inc`, `file:///...#inc`,
 * `some-package#fn`, `some-package/sub#fn`): relative paths resolve against
 * the worker's working directory, packages from there too. TypeScript modules
 * load through tsx (importUserModule). Inline sources are evaluated once and cached.
 */
import { createRequire } from 'node:module';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FN_INLINE, FN_MODULE } from '../protocol/spec.ts';
import { importUserModule, userCodeGeneration } from '../util/user-modules.ts';

export type TaskFunction = (...args: unknown[]) => unknown;

const resolved = new Map<string, TaskFunction | Promise<TaskFunction>>();
/** userCodeGeneration() when module functions were last resolved: once it moves, they are resolved again. */
let generation = 0;

/** Splits `module#export`; the export defaults to `default`. */
export function splitRef(ref: string): { module: string; name: string } {
  const i = ref.lastIndexOf('#');
  if (i <= 0) return { module: ref, name: 'default' };
  return { module: ref.slice(0, i), name: ref.slice(i + 1) || 'default' };
}

function moduleUrl(spec: string, cwd: string): string {
  if (spec.startsWith('file:') || spec.startsWith('node:') || spec.startsWith('data:')) return spec;
  if (spec.startsWith('.') || isAbsolute(spec)) return pathToFileURL(resolvePath(cwd, spec)).href;
  // A package: resolve it from the working directory, as the user's code would.
  try {
    return pathToFileURL(createRequire(resolvePath(cwd, 'noop.js')).resolve(spec)).href;
  } catch {
    return spec;
  }
}

async function loadModuleFunction(ref: string, cwd: string): Promise<TaskFunction> {
  const { module, name } = splitRef(ref);
  let mod: Record<string, unknown>;
  try {
    mod = await importUserModule(moduleUrl(module, cwd));
  } catch (err) {
    const e = new Error(`cannot import task module '${module}' (from ${cwd}): ${(err as Error).message}`);
    e.name = 'TaskImportError';
    throw e;
  }
  // A CommonJS or transpiled module may put its exports under `default`.
  let fn = mod[name];
  const dflt = mod['default'];
  if (fn === undefined && dflt && typeof dflt === 'object') fn = (dflt as Record<string, unknown>)[name];
  if (typeof fn !== 'function') {
    const e = new Error(`module '${module}' has no exported function '${name}' (exports: ${Object.keys(mod).join(', ') || 'none'})`);
    e.name = 'TaskImportError';
    throw e;
  }
  return fn as TaskFunction;
}

function compileInline(src: string): TaskFunction {
  const fn: unknown = new Function(`"use strict"; return ${src};`)();
  if (typeof fn !== 'function') throw new TypeError('inline task source did not evaluate to a function');
  return fn as TaskFunction;
}

/** Drops a function from the cache (the scheduler forgot it): an inline one's compiled source goes. A module stays imported. */
export function forgetFunction(kind: number, ref: string): void {
  resolved.delete(kind === FN_MODULE ? `m:${ref}` : ref);
}

/** The function for a spec: synchronous when cached, a promise the first time a module is imported. */
export function resolveFunction(kind: number, ref: string, cwd: string): TaskFunction | Promise<TaskFunction> {
  if (generation !== userCodeGeneration()) {
    // A task module changed on disk: its functions are taken from the new version (see user-modules.ts).
    generation = userCodeGeneration();
    for (const k of resolved.keys()) if (k.startsWith('m:')) resolved.delete(k);
  }
  const cacheKey = kind === FN_MODULE ? `m:${ref}` : ref;
  const hit = resolved.get(cacheKey);
  if (hit) return hit;
  if (kind === FN_INLINE) {
    const fn = compileInline(ref);
    resolved.set(cacheKey, fn);
    return fn;
  }
  const p = loadModuleFunction(ref, cwd).then(
    (fn) => {
      resolved.set(cacheKey, fn);
      return fn;
    },
    (err: unknown) => {
      resolved.delete(cacheKey);
      throw err;
    },
  );
  resolved.set(cacheKey, p);
  return p;
}
