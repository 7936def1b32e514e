/**
 * Step inputs and outputs as msgpack in step processes. Simple values (see
 * simple-codec.ts) are encoded and decoded without msgpackr, which is loaded
 * on first use for anything else: a process that runs one small step starts
 * without it, a fifth of its start-up. The parent decodes with msgpackr.
 */
import { CODEC_OPTIONS } from '../protocol/codec-options.ts';
import { encodeSimple, NOT_SIMPLE, readSimple } from '../protocol/simple-codec.ts';

interface Codec {
  encode(v: unknown): Uint8Array;
  decode(b: Uint8Array): unknown;
}

let full: Promise<Codec> | null = null;

function msgpackr(): Promise<Codec> {
  full ??= import('msgpackr').then(({ Packr, Unpackr }) => {
    const packr = new Packr(CODEC_OPTIONS);
    const unpackr = new Unpackr(CODEC_OPTIONS);
    return {
      encode: (v) => Uint8Array.prototype.slice.call(packr.pack(v)), // own the bytes: msgpackr reuses its buffer
      decode: (b) => unpackr.unpack(b),
    };
  });
  return full;
}

/** Encodes a value as msgpack. */
export async function encodeValue(v: unknown): Promise<Uint8Array> {
  return encodeSimple(v) ?? (await msgpackr()).encode(v);
}

/** Decodes msgpack bytes. */
export async function decodeValue(b: Uint8Array): Promise<unknown> {
  const simple = readSimple(b);
  return simple !== NOT_SIMPLE ? simple : (await msgpackr()).decode(b);
}
