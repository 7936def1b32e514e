/**
 * msgpack for the values most tasks take and return: null, booleans,
 * numbers, strings, and arrays of those, and in arguments the references
 * to a task's dependencies (DepRef). Writing and reading them here costs a
 * few byte operations, where msgpackr's general path costs a call with
 * setup and a buffer view per value; anything else goes to msgpackr. The
 * bytes are standard msgpack (DepRef in msgpackr's own form of it) either
 * way, so either side decodes the other's.
 */
import { DepRef } from './codec.ts';

/** Returned by readSimple for bytes it does not handle (msgpackr does). */
export const NOT_SIMPLE: unique symbol = Symbol('not simple');

const MAX_DEPTH = 4;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A growing byte buffer. */
export class ByteWriter {
  buf: Uint8Array;
  view: DataView;
  pos = 0;

  constructor(size = 256) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** The bytes written so far (a view; copy it to keep it past more writes). */
  get written(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

/** Writes `v` if it is simple and returns true; otherwise writes nothing and returns false. */
export function writeSimple(w: ByteWriter, v: unknown): boolean {
  const start = w.pos;
  if (write(w, v, 0)) return true;
  w.pos = start;
  return false;
}

function write(w: ByteWriter, v: unknown, depth: number): boolean {
  if (v === null) {
    w.byte(0xc0);
    return true;
  }
  switch (typeof v) {
    case 'boolean':
      w.byte(v ? 0xc3 : 0xc2);
      return true;
    case 'number':
      writeNumber(w, v);
      return true;
    case 'string':
      writeString(w, v);
      return true;
    case 'object': {
      if (v instanceof DepRef) return writeDepRef(w, v.index);
      if (!Array.isArray(v) || depth >= MAX_DEPTH || Object.getPrototypeOf(v) !== Array.prototype) return false;
      const n = v.length;
      if (n < 16) w.byte(0x90 | n);
      else if (n < 0x10000) {
        w.ensure(3);
        w.buf[w.pos] = 0xdc;
        w.view.setUint16(w.pos + 1, n);
        w.pos += 3;
      } else {
        w.ensure(5);
        w.buf[w.pos] = 0xdd;
        w.view.setUint32(w.pos + 1, n);
        w.pos += 5;
      }
      for (let i = 0; i < n; i++) {
        // A hole or undefined is not simple (msgpackr writes undefined its own way).
        if (!(i in v) || !write(w, v[i], depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

/**
 * msgpackr's form of an extension written by value: fixext 1 of the type
 * and a zero byte, then the value (DepRef's index) as msgpack.
 */
const DEP_REF_HEAD = [0xd4, 0x59, 0x00] as const;

function writeDepRef(w: ByteWriter, index: number): boolean {
  if (!Number.isInteger(index) || index < 0 || index > 0xffffffff) return false;
  w.ensure(3);
  for (const b of DEP_REF_HEAD) w.buf[w.pos++] = b;
  writeNumber(w, index);
  return true;
}

function writeNumber(w: ByteWriter, v: number): void {
  if (Number.isInteger(v) && !Object.is(v, -0) && v >= -0x80000000 && v <= 0xffffffff) {
    if (v >= 0 && v < 128) return w.byte(v);
    if (v < 0 && v >= -32) return w.byte(v & 0xff);
    w.ensure(5);
    if (v >= 0) {
      w.buf[w.pos] = 0xce;
      w.view.setUint32(w.pos + 1, v);
    } else {
      w.buf[w.pos] = 0xd2;
      w.view.setInt32(w.pos + 1, v);
    }
    w.pos += 5;
    return;
  }
  w.ensure(9);
  w.buf[w.pos] = 0xcb;
  w.view.setFloat64(w.pos + 1, v);
  w.pos += 9;
}

function writeString(w: ByteWriter, s: string): void {
  // At most 3 bytes per UTF-16 unit; the header is written once the length is known.
  const max = s.length * 3;
  const head = max < 32 ? 1 : max < 0x100 ? 2 : max < 0x10000 ? 3 : 5;
  w.ensure(head + max);
  const { written } = encoder.encodeInto(s, w.buf.subarray(w.pos + head));
  const n = written;
  // The header that fits the actual length may be shorter: move the bytes back.
  const need = n < 32 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
  if (need !== head) w.buf.copyWithin(w.pos + need, w.pos + head, w.pos + head + n);
  if (need === 1) w.buf[w.pos] = 0xa0 | n;
  else if (need === 2) {
    w.buf[w.pos] = 0xd9;
    w.buf[w.pos + 1] = n;
  } else if (need === 3) {
    w.buf[w.pos] = 0xda;
    w.view.setUint16(w.pos + 1, n);
  } else {
    w.buf[w.pos] = 0xdb;
    w.view.setUint32(w.pos + 1, n);
  }
  w.pos += need + n;
}

/** Encodes `v` into fresh bytes if it is simple; null otherwise. */
export function encodeSimple(v: unknown): Uint8Array | null {
  const w = new ByteWriter(16);
  return writeSimple(w, v) ? w.buf.slice(0, w.pos) : null;
}

/**
 * Decodes bytes holding exactly one simple value; NOT_SIMPLE for anything
 * else. `start` and `end` read a range of `b` without making a view of it.
 */
export function readSimple(b: Uint8Array, start = 0, end = b.length): unknown {
  const r: Reader = { b, end, dv: null, pos: start };
  const v = read(r, 0);
  return v !== NOT_SIMPLE && r.pos === end ? v : NOT_SIMPLE;
}

interface Reader {
  b: Uint8Array;
  /** Where the value's bytes end in `b`. */
  end: number;
  /** Made on first use: most values (small integers, short strings) need none. */
  dv: DataView | null;
  pos: number;
}

function view(r: Reader): DataView {
  return (r.dv ??= new DataView(r.b.buffer, r.b.byteOffset, r.b.byteLength));
}

/*
 * No closures in here: this runs for every argument and result, and a closure
 * costs an allocation per call (and, under tsx's keepNames, a defineProperty).
 */
function read(r: Reader, depth: number): unknown {
  const b = r.b;
  if (r.pos >= r.end) return NOT_SIMPLE;
  const t = b[r.pos] as number;
  const p = r.pos + 1;
  const left = r.end - p;
  if (t < 0x80) {
    r.pos = p;
    return t;
  }
  if (t >= 0xe0) {
    r.pos = p;
    return t - 0x100;
  }
  if (t >= 0xa0 && t <= 0xbf) return str(r, p, t & 0x1f);
  if (t >= 0x90 && t <= 0x9f) return arr(r, p, t & 0x0f, depth);
  switch (t) {
    case 0xc0:
      r.pos = p;
      return null;
    case 0xc2:
      r.pos = p;
      return false;
    case 0xc3:
      r.pos = p;
      return true;
    case 0xcc:
      if (left < 1) return NOT_SIMPLE;
      r.pos = p + 1;
      return b[p];
    case 0xcd:
      if (left < 2) return NOT_SIMPLE;
      r.pos = p + 2;
      return view(r).getUint16(p);
    case 0xce:
      if (left < 4) return NOT_SIMPLE;
      r.pos = p + 4;
      return view(r).getUint32(p);
    case 0xd0:
      if (left < 1) return NOT_SIMPLE;
      r.pos = p + 1;
      return view(r).getInt8(p);
    case 0xd1:
      if (left < 2) return NOT_SIMPLE;
      r.pos = p + 2;
      return view(r).getInt16(p);
    case 0xd2:
      if (left < 4) return NOT_SIMPLE;
      r.pos = p + 4;
      return view(r).getInt32(p);
    case 0xca:
      if (left < 4) return NOT_SIMPLE;
      r.pos = p + 4;
      return view(r).getFloat32(p);
    case 0xcb:
      if (left < 8) return NOT_SIMPLE;
      r.pos = p + 8;
      return view(r).getFloat64(p);
    case 0xd9:
      return left >= 1 ? str(r, p + 1, b[p] as number) : NOT_SIMPLE;
    case 0xda:
      return left >= 2 ? str(r, p + 2, view(r).getUint16(p)) : NOT_SIMPLE;
    case 0xdb:
      return left >= 4 ? str(r, p + 4, view(r).getUint32(p)) : NOT_SIMPLE;
    case 0xdc:
      return left >= 2 ? arr(r, p + 2, view(r).getUint16(p), depth) : NOT_SIMPLE;
    case 0xdd:
      return left >= 4 ? arr(r, p + 4, view(r).getUint32(p), depth) : NOT_SIMPLE;
    case 0xd4:
      return left >= 2 && b[p] === DEP_REF_HEAD[1] && b[p + 1] === DEP_REF_HEAD[2] ? depRef(r, p + 2, depth) : NOT_SIMPLE;
    default:
      return NOT_SIMPLE;
  }
}

function depRef(r: Reader, start: number, depth: number): unknown {
  r.pos = start;
  const i = read(r, depth + 1);
  return typeof i === 'number' && Number.isInteger(i) && i >= 0 ? new DepRef(i) : NOT_SIMPLE;
}

function str(r: Reader, start: number, n: number): unknown {
  if (start + n > r.end) return NOT_SIMPLE;
  r.pos = start + n;
  return decoder.decode(r.b.subarray(start, start + n));
}

function arr(r: Reader, start: number, n: number, depth: number): unknown {
  if (depth >= MAX_DEPTH || n > r.end - start) return NOT_SIMPLE;
  r.pos = start;
  const out: unknown[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const v = read(r, depth + 1);
    if (v === NOT_SIMPLE) return NOT_SIMPLE;
    out[i] = v;
  }
  return out;
}
