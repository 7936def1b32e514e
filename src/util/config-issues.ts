/**
 * What is wrong with a config (an executor's, a run's, an op's), said so a
 * user can act on it: the path of each problem, and for a key the schema does
 * not have, the keys it does have, the one that was probably meant, and the
 * object it belongs in when it is one level too high. zod's own messages say
 * "Unrecognized key" or, for a union, "Invalid input", and a plain
 * `z.object` drops unknown keys without a word: an op config's typo would
 * silently give the default. `strayKeys` finds those.
 */
import type { z } from 'zod';

export interface ConfigIssue {
  /** Dotted, from the config's root (`execution.config.multiprocess.maxConcurrent`). */
  path: string;
  message: string;
}

interface Issue {
  path: PropertyKey[];
  message: string;
  code?: string;
  keys?: string[];
  /** invalid_union: the issues of each alternative. */
  errors?: Issue[][];
}

/** The issues of a failed parse of `schema`, under `prefix`. */
export function configIssues(schema: z.ZodType, err: z.ZodError, prefix: string): ConfigIssue[] {
  return flattenUnions(err.issues as Issue[], []).flatMap((i) => {
    const path = i.path.map(String);
    if (i.code === 'unrecognized_keys' && i.keys) return i.keys.map((k) => ({ path: join(prefix, path), message: unknownKey(schemaAt(schema, path), k) }));
    return [{ path: join(prefix, path), message: i.message }];
  });
}

/**
 * Keys of `value` that `schema` would drop without a word (a `z.object` that
 * is neither strict nor loose), as issues under `prefix`: for a config, a
 * key nobody reads is a mistake.
 */
export function strayKeys(schema: z.ZodType, value: unknown, prefix: string): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const walk = (s: Def | null, v: unknown, path: string[]): void => {
    s = unwrap(s);
    if (s === null || v === null || typeof v !== 'object') return;
    if (s.type === 'array' && Array.isArray(v)) v.forEach((item, i) => walk(defOf(s.element), item, [...path, String(i)]));
    else if (s.type === 'record' && !Array.isArray(v)) for (const [k, item] of Object.entries(v)) walk(defOf(s.valueType), item, [...path, k]);
    else if (s.type === 'object' && !Array.isArray(v)) {
      const shape = s.shape ?? {};
      for (const [k, item] of Object.entries(v)) {
        if (k in shape) walk(defOf(shape[k]), item, [...path, k]);
        else if (s.catchall === undefined) out.push({ path: join(prefix, path), message: unknownKey(s, k) });
      }
    }
  };
  walk(defOf(schema), value, []);
  return out;
}

function join(prefix: string, path: string[]): string {
  return [prefix, ...path].filter((p) => p !== '').join('.') || '(root)';
}

/** "unknown key ..." with the allowed keys of the object `s` (if known), a likely one, or the child object it belongs in. */
function unknownKey(s: Def | null, key: string): string {
  const obj = unwrap(s);
  const shape = obj?.type === 'object' ? (obj.shape ?? {}) : null;
  if (shape === null) return `unknown key ${JSON.stringify(key)}`;
  return unknownKeyMessage(key, Object.keys(shape), shape);
}

/** "unknown key ..." among `allowed` keys: a likely one, or (given their schemas) the child object it belongs in. */
export function unknownKeyMessage(key: string, allowed: string[], shape: Record<string, unknown> = {}): string {
  let msg = `unknown key ${JSON.stringify(key)}`;
  const near = closest(key, allowed);
  if (near !== null) msg += ` (did you mean ${JSON.stringify(near)}?)`;
  else {
    const parent = allowed.find((k) => {
      const child = unwrap(defOf(shape[k]));
      return child?.type === 'object' && key in (child.shape ?? {});
    });
    if (parent !== undefined) msg += ` (it belongs under ${JSON.stringify(parent)}: { ${parent}: { ${key}: ... } })`;
  }
  return `${msg}; allowed: ${allowed.length > 0 ? allowed.join(', ') : 'none'}`;
}

/** The allowed key a typo most likely meant: of 3 or more characters, at most 2 edits away and a third of its length. */
function closest(key: string, allowed: string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const a of allowed) {
    const d = distance(key.toLowerCase(), a.toLowerCase());
    if (d < bestD && a.length >= 3 && d <= Math.min(2, Math.max(1, Math.floor(a.length / 3)))) {
      best = a;
      bestD = d;
    }
  }
  return best;
}

/** Levenshtein distance. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row.push(Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1)));
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/**
 * For a value matching none of a union's alternatives, the issues of the
 * alternative it came closest to (the deepest path): `multiprocess.maxConcurrent`
 * rather than "invalid input".
 */
function flattenUnions(issues: Issue[], base: PropertyKey[]): Issue[] {
  const out: Issue[] = [];
  for (const i of issues) {
    const path = [...base, ...i.path];
    if (i.code === 'invalid_union' && i.errors && i.errors.length > 0) {
      const depth = (branch: Issue[]): number => Math.max(...branch.map((b) => b.path.length));
      const best = [...i.errors].sort((a, b) => depth(b) - depth(a))[0] as Issue[];
      if (depth(best) > 0) {
        out.push(...flattenUnions(best, path));
        continue;
      }
    }
    out.push({ ...i, path });
  }
  return out;
}

// ---------------------------------------------------------------- zod's schema definitions (zod 4's `_zod.def`)

interface Def {
  type: string;
  innerType?: unknown;
  in?: unknown;
  shape?: Record<string, unknown>;
  catchall?: unknown;
  element?: unknown;
  valueType?: unknown;
  options?: unknown[];
  getter?: () => unknown;
}

function defOf(schema: unknown): Def | null {
  const def = (schema as { _zod?: { def?: Def } } | undefined)?._zod?.def;
  return def && typeof def.type === 'string' ? def : null;
}

/** Through optional, default, nullable, pipe (its input side) and lazy, to the schema that says what the value is. */
function unwrap(d: Def | null): Def | null {
  for (let i = 0; d !== null && i < 32; i++) {
    if (d.innerType !== undefined) d = defOf(d.innerType);
    else if (d.type === 'pipe') d = defOf(d.in);
    else if (d.type === 'lazy' && d.getter) d = defOf(d.getter());
    else return d;
  }
  return d;
}

/** The schema at `path` (keys, array indices), or null where it cannot be told (a union of objects: the first that has the key). */
function schemaAt(schema: z.ZodType, path: string[]): Def | null {
  let d: Def | null = defOf(schema);
  for (const seg of path) {
    d = unwrap(d);
    if (d === null) return null;
    if (d.type === 'object') d = defOf(d.shape?.[seg]);
    else if (d.type === 'array') d = defOf(d.element);
    else if (d.type === 'record') d = defOf(d.valueType);
    else if (d.type === 'union') d = defOf((d.options ?? []).map((o) => unwrap(defOf(o))).find((o) => o?.type === 'object' && o.shape !== undefined && seg in o.shape)?.shape?.[seg]);
    else return null;
  }
  return d;
}
