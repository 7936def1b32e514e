/**
 * Dynamic outputs at run time: the items an op emits (dynamicOutput, or
 * ctx.emit), and how a mapped step's copies are named. An item of dynamic
 * output `result` under mapping key `k` travels as output `result[k]` (an
 * event, a value, a file of the output store, like any output); the copy
 * of mapped step `measure` for it is step `measure[k]`, and a copy inside a
 * map inside a map `leaf[k][j]`.
 */
import { DEFAULT_OUTPUT } from './retry.ts';

/** Mapping keys as Dagster's: letters, digits and _. */
const MAPPING_KEY = /^[A-Za-z0-9_]+$/;
/** A key this long or longer is refused: it names steps, files and container labels. */
export const MAX_MAPPING_KEY = 100;

/**
 * Marks an item as weft's whichever copy of weft made it: a step process
 * runs ops with its own copy (the step bundle), while the code location may
 * import another, so `instanceof` would not do.
 */
const ITEM_BRAND = Symbol.for('weft.dynamicOutput');

/** An item of a dynamic output: yield it from an op's generator. */
export class DynamicOutput<T = unknown> {
  readonly [ITEM_BRAND] = true;

  constructor(
    readonly mappingKey: string,
    readonly value: T,
    readonly output: string = DEFAULT_OUTPUT,
  ) {}
}

/** An item of a dynamic output, made by any copy of weft. */
export function isDynamicOutput(v: unknown): v is DynamicOutput {
  return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[ITEM_BRAND] === true;
}

/** An item of a dynamic output, under `key` (unique within the output). `output`: which dynamic output (default: the op's only one). */
export function dynamicOutput<T>(key: string, value: T, opts: { output?: string } = {}): DynamicOutput<T> {
  return new DynamicOutput(key, value, opts.output ?? DEFAULT_OUTPUT);
}

/** Why `key` cannot be a mapping key, or null. */
export function mappingKeyProblem(key: unknown): string | null {
  if (typeof key !== 'string') return `a mapping key must be a string (got ${typeof key})`;
  if (!MAPPING_KEY.test(key)) return `mapping key ${JSON.stringify(key.slice(0, MAX_MAPPING_KEY))} is not valid: use letters, digits and _`;
  if (key.length > MAX_MAPPING_KEY) return `mapping key ${key.slice(0, 20)}... is ${key.length} characters; at most ${MAX_MAPPING_KEY}`;
  return null;
}

/** The output name an item travels under: `result[k]`. */
export function itemOutput(output: string, key: string): string {
  return `${output}[${key}]`;
}

/** An item's output name, split: [output, key], or null for a plain output. */
export function splitItemOutput(name: string): [string, string] | null {
  const open = name.indexOf('[');
  if (open < 0 || !name.endsWith(']')) return null;
  return [name.slice(0, open), name.slice(open + 1, -1)];
}

/** The copy of mapped step `template` for mapping keys `keys` (outermost first): `measure[k]`, `leaf[k][j]`. */
export function copyKey(template: string, keys: readonly string[]): string {
  return template + keys.map((k) => `[${k}]`).join('');
}

/** Whether a step key names a copy of a mapped step. */
export function isCopy(key: string): boolean {
  return key.endsWith(']');
}

/** A step key, split into its template and mapping keys: `leaf[k][j]` gives leaf and [k, j]. */
export function splitCopyKey(key: string): { template: string; keys: string[] } {
  const open = key.indexOf('[');
  if (open < 0 || !key.endsWith(']')) return { template: key, keys: [] };
  return { template: key.slice(0, open), keys: key.slice(open + 1, -1).split('][') };
}
