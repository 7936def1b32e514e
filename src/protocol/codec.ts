/** One msgpack configuration for everything weft puts on the wire (options: codec-options.ts). */
import { Packr, Unpackr, addExtension } from 'msgpackr';
import { CODEC_OPTIONS as OPTIONS } from './codec-options.ts';

/** A reference to another task's result, found anywhere inside a task's arguments. */
export class KeyRef {
  constructor(readonly key: string) {}
}

const KEY_REF_EXT = 0x57; // 'W'

addExtension({
  Class: KeyRef,
  type: KEY_REF_EXT,
  write: (ref: KeyRef) => ref.key,
  read: (key: unknown) => {
    if (typeof key !== 'string') throw new TypeError('malformed key reference');
    return new KeyRef(key);
  },
});

const packr = new Packr(OPTIONS);
const unpackr = new Unpackr(OPTIONS);

/**
 * Encodes a value. The returned Buffer may be a view into a larger shared
 * block that msgpackr does not overwrite; copy it with `encodeOwned` when it
 * must be transferred or kept long.
 */
export function encode(value: unknown): Buffer {
  return packr.pack(value);
}

/** Encodes into a Buffer that owns its whole ArrayBuffer (safe to transfer). */
export function encodeOwned(value: unknown): Buffer {
  const view = packr.pack(value);
  const owned = Buffer.allocUnsafeSlow(view.length);
  view.copy(owned);
  return owned;
}

export function decode(bytes: Uint8Array): unknown {
  return unpackr.unpack(bytes);
}

/** Decodes values encoded one after another into one buffer, in one call. */
export function decodeSequence(bytes: Uint8Array): unknown[] {
  return bytes.length === 0 ? [] : (unpackr.unpackMultiple(bytes) as unknown[]);
}
