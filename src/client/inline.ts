/**
 * Inline functions are shipped as source. A function that uses a variable
 * from its surroundings would fail (or silently differ) on the worker, so the
 * source is parsed and every free variable that is not a global is reported
 * before anything is sent.
 */
import type * as Acorn from 'acorn';
import type * as EslintScope from 'eslint-scope';
import type { Program } from 'estree';
import { InlineFunctionError } from '../errors.ts';
import { lazyPackage } from '../util/lazy.ts';

const acorn = lazyPackage<typeof Acorn>('acorn');
const eslintScope = lazyPackage<typeof EslintScope>('eslint-scope');

/** Names a task may use freely: the runtime's globals, plus the helper tsx/esbuild insert. */
const ALLOWED = new Set<string>([...Object.getOwnPropertyNames(globalThis), '__name', 'undefined', 'NaN', 'Infinity', 'arguments']);

const cache = new WeakMap<object, string>();

/** Returns a source that evaluates to `fn`, or throws InlineFunctionError. */
export function inlineSource(fn: (...args: never[]) => unknown): string {
  const hit = cache.get(fn);
  if (hit) return hit;
  const label = fn.name ? `inline function ${fn.name}` : 'inline function';
  const src = fn.toString();
  if (/\{\s*\[native code\]\s*\}$/.test(src)) {
    throw new InlineFunctionError(`${label} is native or bound and has no source to ship; wrap it: (x) => ${fn.name || 'fn'}(x) only works if the wrapped function is a global, otherwise reference a module export ('./tasks.ts#name')`);
  }
  if (/^class[\s{]/.test(src)) throw new InlineFunctionError(`${label} is a class, not a function`);
  const expr = asExpression(src);
  if (expr === null) throw new InlineFunctionError(`cannot parse the source of ${label}; reference a module export instead ('./tasks.ts#name')`);
  const free = freeVariables(expr);
  if (free.length > 0) {
    const names = free.map((n) => `'${n}'`).join(', ');
    throw new InlineFunctionError(
      `${label} uses ${free.length === 1 ? 'the outer variable' : 'outer variables'} ${names}, which will not exist on the worker. ` +
        `Pass ${free.length === 1 ? 'it' : 'them'} as arguments (client.submit((x, ${free[0]}) => ..., x, ${free[0]})) or put the function in a module and reference it as './module.ts#name'.`,
    );
  }
  cache.set(fn, expr);
  return expr;
}

/** Turns a function's source into an expression: arrows and `function`s as they are, methods via an object literal. */
function asExpression(src: string): string | null {
  const candidates = [`(${src})`, `({${src}})`];
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i] as string;
    try {
      acorn().parse(c, { ecmaVersion: 'latest', sourceType: 'script' });
    } catch {
      continue;
    }
    if (i === 0) return c;
    // A method (`m(x) { ... }` or `async m() {}`): take it out of the object.
    const name = /^(?:async\s+)?\*?\s*([A-Za-z_$][\w$]*)\s*\(/.exec(src)?.[1];
    if (!name) return null;
    return `(${c}).${name}`;
  }
  return null;
}

function freeVariables(expr: string): string[] {
  const ast = acorn().parse(expr, { ecmaVersion: 'latest', sourceType: 'script', ranges: true }) as unknown as Program;
  const scopes = eslintScope().analyze(ast, { ecmaVersion: 2022, sourceType: 'script' });
  const global = scopes.globalScope;
  if (!global) return [];
  const names = new Set<string>();
  for (const ref of global.through) {
    const name = ref.identifier.name;
    if (!ALLOWED.has(name)) names.add(name);
  }
  return [...names];
}
