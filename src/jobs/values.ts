/**
 * Step inputs and outputs as msgpack in step processes. Values made of
 * nothing but null, booleans, numbers and strings (most small steps) are
 * encoded and decoded here; anything else loads msgpackr on first use. A
 * process that runs one small step then starts without msgpackr, which is a
 * fifth of its start-up. The bytes are standard msgpack either way: the
 * parent decodes them with msgpackr.
 */
import { CODEC_OPTIONS } from '../protocol/codec-options.ts';

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
      encode: (v) => {
        const view = packr.pack(v);
        return Uint8Array.prototype.slice.call(view); // own the bytes: msgpackr reuses its buffer
      },
      decode: (b) => unpackr.unpack(b),
    };
  });
  return full;
}

const NOT_SIMPLE = Symbol('not simple');
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes a value as msgpack. */
export async function encodeValue(v: unknown): Promise<Uint8Array> {
  const simple = encodeSimple(v);
  return simple ?? (await msgpackr()).encode(v);
}

/** Decodes msgpack bytes. */
export async function decodeValue(b: Uint8Array): Promise<unknown> {
  const simple = decodeSimple(b);
  return simple !== NOT_SIMPLE ? simple : (await msgpackr()).decode(b);
}

/** Encodes null, a boolean, a number or a string; null for anything else. */
export function encodeSimple(v: unknown): Uint8Array | null {
  if (v === null) return Uint8Array.of(0xc0);
  if (v === true) return Uint8Array.of(0xc3);
  if (v === false) return Uint8Array.of(0xc2);
  if (typeof v === 'number') {
    if (Number.isInteger(v) && !Object.is(v, -0) && v >= -0x80000000 && v <= 0xffffffff) {
      if (v >= 0 && v < 128) return Uint8Array.of(v);
      if (v < 0 && v >= -32) return Uint8Array.of(v & 0xff);
      const out = new Uint8Array(5);
      const dv = new DataView(out.buffer);
      if (v >= 0) {
        out[0] = 0xce;
        dv.setUint32(1, v);
      } else {
        out[0] = 0xd2;
        dv.setInt32(1, v);
      }
      return out;
    }
    const out = new Uint8Array(9);
    out[0] = 0xcb;
    new DataView(out.buffer).setFloat64(1, v);
    return out;
  }
  if (typeof v === 'string') {
    const bytes = encoder.encode(v);
    const n = bytes.length;
    let head: number[];
    if (n < 32) head = [0xa0 | n];
    else if (n < 0x100) head = [0xd9, n];
    else if (n < 0x10000) head = [0xda, n >> 8, n & 0xff];
    else head = [0xdb, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
    const out = new Uint8Array(head.length + n);
    out.set(head);
    out.set(bytes, head.length);
    return out;
  }
  return null;
}

/** Decodes one whole msgpack value of the simple kinds; NOT_SIMPLE for anything else. */
export function decodeSimple(b: Uint8Array): unknown {
  const t = b[0];
  if (t === undefined) return NOT_SIMPLE;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const whole = (size: number, v: unknown): unknown => (b.length === size ? v : NOT_SIMPLE);
  if (t < 0x80) return whole(1, t);
  if (t >= 0xe0) return whole(1, t - 0x100);
  if (t >= 0xa0 && t <= 0xbf) return str(b, 1, t & 0x1f);
  switch (t) {
    case 0xc0:
      return whole(1, null);
    case 0xc2:
      return whole(1, false);
    case 0xc3:
      return whole(1, true);
    case 0xcc:
      return b.length === 2 ? dv.getUint8(1) : NOT_SIMPLE;
    case 0xcd:
      return b.length === 3 ? dv.getUint16(1) : NOT_SIMPLE;
    case 0xce:
      return b.length === 5 ? dv.getUint32(1) : NOT_SIMPLE;
    case 0xd0:
      return b.length === 2 ? dv.getInt8(1) : NOT_SIMPLE;
    case 0xd1:
      return b.length === 3 ? dv.getInt16(1) : NOT_SIMPLE;
    case 0xd2:
      return b.length === 5 ? dv.getInt32(1) : NOT_SIMPLE;
    case 0xca:
      return b.length === 5 ? dv.getFloat32(1) : NOT_SIMPLE;
    case 0xcb:
      return b.length === 9 ? dv.getFloat64(1) : NOT_SIMPLE;
    case 0xd9:
      return b.length >= 2 ? str(b, 2, dv.getUint8(1)) : NOT_SIMPLE;
    case 0xda:
      return b.length >= 3 ? str(b, 3, dv.getUint16(1)) : NOT_SIMPLE;
    case 0xdb:
      return b.length >= 5 ? str(b, 5, dv.getUint32(1)) : NOT_SIMPLE;
    default:
      return NOT_SIMPLE;
  }
}

function str(b: Uint8Array, start: number, n: number): unknown {
  return b.length === start + n ? decoder.decode(b.subarray(start)) : NOT_SIMPLE;
}
