/** A message with its typed number columns (Float64Array, Uint32Array) as plain arrays, to compare with toEqual. */
export function plainColumns(msg: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(msg)) out[k] = v instanceof Float64Array || v instanceof Uint32Array ? Array.from(v) : v;
  return out;
}
