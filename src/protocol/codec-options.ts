/**
 * msgpackr options for everything weft puts on the wire (see codec.ts), in a
 * module of their own so that code which loads msgpackr lazily (step
 * processes, see jobs/values.ts) encodes the same way.
 *
 * - `moreTypes` keeps typed arrays typed (Float64Array stays Float64Array).
 * - `mapsAsObjects: false` keeps a Map a Map (plain objects travel as records).
 * - Records carry their structure in each message (no shared `structures`), so
 *   any frame decodes on its own, whoever joined late.
 */
export const CODEC_OPTIONS = {
  moreTypes: true,
  useBigIntExtension: true,
  mapsAsObjects: false,
} as const;
