/**
 * One msgpack configuration for everything weft puts on the wire (options:
 * codec-options.ts). msgpackr loads on the first encode or decode, not with
 * weft (util/lazy.ts): a code location that imports weft never needs it.
 */
import type * as Msgpackr from 'msgpackr';
import { CODEC_OPTIONS as OPTIONS } from './codec-options.ts';
import { objectList } from '../util/lists.ts';
import { lazyPackage } from '../util/lazy.ts';
import { copyDeferred, copyOf, LAZY_BYTES } from './own-copies.ts';

const msgpackr = lazyPackage<typeof Msgpackr>('msgpackr');

/** A reference to another task's result, found anywhere inside a task's arguments. */
export class KeyRef {
  constructor(readonly key: string) {}
}

const KEY_REF_EXT = 0x57; // 'W'

const keyRefExtension = {
  Class: KeyRef,
  type: KEY_REF_EXT,
  write: (ref: KeyRef) => ref.key,
  read: (key: unknown) => {
    if (typeof key !== 'string') throw new TypeError('malformed key reference');
    return new KeyRef(key);
  },
};

/**
 * A reference to a task's result as it travels inside the task's arguments:
 * the index of that key in the task's dependency list (which the graph
 * message carries anyway), not the key again. A tree's task refers to two
 * keys of 10-30 characters: 3 bytes each instead of 15-35, in every graph
 * message, in the scheduler's copy of every task's arguments (2M tasks:
 * 24 MB less) and in every compute message.
 */
export class DepRef {
  constructor(readonly index: number) {}
}

const DEP_REF_EXT = 0x59; // 'Y'

const depRefExtension = {
  Class: DepRef,
  type: DEP_REF_EXT,
  write: (ref: DepRef) => ref.index,
  read: (index: unknown) => {
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0) throw new TypeError('malformed dependency reference');
    return new DepRef(index);
  },
};

/**
 * A long list of keys on the wire: the keys joined into one string, and their
 * lengths. msgpack then writes and reads one string and one block of numbers
 * instead of a string per key; the receiver gets a plain `string[]` back.
 */
export class KeyColumn {
  constructor(readonly keys: readonly string[]) {}
}

const KEY_COLUMN_EXT = 0x58; // 'X'

const keyColumnExtension = {
  Class: KeyColumn,
  type: KEY_COLUMN_EXT,
  write: (col: KeyColumn) => {
    const keys = col.keys;
    const lengths = new Uint32Array(keys.length);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      if (typeof k !== 'string') throw new TypeError(`key column item ${i} is not a string`);
      lengths[i] = k.length;
    }
    // A lone surrogate has no UTF-8 form: as U+FFFD it keeps the lengths right (clients refuse such keys anyway).
    const text = keys.join('');
    return [text.isWellFormed() ? text : text.toWellFormed(), lengths];
  },
  read: (v: unknown) => readKeyColumn(v),
};

function readKeyColumn(v: unknown): string[] {
  if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'string' || !(v[1] instanceof Uint32Array)) throw new TypeError('malformed key column: expected [text, Uint32Array of lengths]');
  const text: string = v[0];
  const lengths: Uint32Array = v[1];
  const keys = objectList<string>();
  let at = 0;
  for (let i = 0; i < lengths.length; i++) {
    const n = lengths[i] as number;
    // An empty key decodes as one: the message's schema, not the codec, says which keys are valid.
    if (at + n > text.length) throw new TypeError(`malformed key column: key ${i} (length ${n}) runs past the text`);
    keys.push(text.substring(at, at + n));
    at += n;
  }
  if (at !== text.length) throw new TypeError(`malformed key column: the lengths cover ${at} of ${text.length} characters`);
  return keys;
}

/** Message fields that hold keys; lists of at least MIN_KEY_COLUMN of them travel as a KeyColumn. */
const KEY_FIELDS = ['keys', 'deps'] as const;
const MIN_KEY_COLUMN = 16;

/** The message to encode: itself, or a copy with its long key lists as KeyColumns. */
export function withKeyColumns(msg: object): object {
  let out: Record<string, unknown> | null = null;
  for (const f of KEY_FIELDS) {
    const v = (msg as Record<string, unknown>)[f];
    if (Array.isArray(v) && v.length >= MIN_KEY_COLUMN) (out ??= { ...msg })[f] = new KeyColumn(v as string[]);
  }
  return out ?? msg;
}

let packr: Msgpackr.Packr | null = null;
let unpackr: Msgpackr.Unpackr | null = null;
/** A decoder whose binary values are copies, not views of the bytes decoded (see decodeCopy). */
let copyingUnpackr: Msgpackr.Unpackr | null = null;

/** The encoder and decoder, made (and weft's extensions registered) on first use. */
function codec(): { packr: Msgpackr.Packr; unpackr: Msgpackr.Unpackr } {
  if (!packr || !unpackr) {
    const m = msgpackr();
    m.addExtension(keyRefExtension);
    m.addExtension(depRefExtension);
    m.addExtension(keyColumnExtension);
    packr = new m.Packr(OPTIONS);
    unpackr = new m.Unpackr(OPTIONS);
    copyingUnpackr = new m.Unpackr({ ...OPTIONS, copyBuffers: true });
  }
  return { packr, unpackr };
}

/**
 * Encodes a value. The returned Buffer may be a view into a larger shared
 * block that msgpackr does not overwrite; copy it with `encodeOwned` when it
 * must be transferred or kept long.
 */
export function encode(value: unknown): Buffer {
  return (packr ?? codec().packr).pack(value);
}

/** msgpackr's RESET_BUFFER_MODE: the next pack writes over this one's bytes. */
const RESET_BUFFER_MODE = 1024;

/**
 * Encodes a value into bytes valid only until the next encode in this
 * thread: for callers that copy them at once. msgpackr otherwise writes each
 * message after the last in its block, and a block that fills is replaced by
 * a fresh one (at least 4 MiB once a message passes 1 MiB), whose pages the
 * kernel must fault in: 20-60x slower than writing touched memory on the
 * development machine (bench/README.md, shuffle). Here the block's start is
 * written over again and again.
 */
export function encodeTransient(value: unknown): Buffer {
  return (packr ?? codec().packr).pack(value, RESET_BUFFER_MODE);
}

/** Encodes into a Buffer that owns its whole ArrayBuffer (safe to transfer). */
export function encodeOwned(value: unknown): Buffer {
  const view = (packr ?? codec().packr).pack(value, RESET_BUFFER_MODE);
  const owned = Buffer.allocUnsafeSlow(view.length);
  view.copy(owned);
  return owned;
}

export function decode(bytes: Uint8Array): unknown {
  if (bytes.length >= VIEW_BYTES && bytes[0] === 0xc9) {
    const view = typedArrayView(bytes);
    if (view) return view;
  }
  return (unpackr ?? codec().unpackr).unpack(asBuffer(bytes));
}

/**
 * The bytes as a Buffer (a view, no copy): msgpackr's binary values are
 * views of what it decodes, so only from a Buffer does a Buffer a task
 * returned come back a Buffer (raw frames arrive as plain Uint8Arrays).
 */
function asBuffer(bytes: Uint8Array): Uint8Array {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Decodes a value that shares no memory with `bytes`, for bytes that several
 * tasks decode, each of which may change its input in place: each binary
 * value and typed array in it is a copy of its own, a large typed array
 * copied only when the task reads it (own-copies.ts). (One copy of the whole
 * bytes to decode views of would be one large allocation: fresh pages to
 * fault in for every task, where small ones reuse freed memory.)
 */
export function decodeCopy(bytes: Uint8Array): unknown {
  if (bytes.length >= VIEW_BYTES && bytes[0] === 0xc9) {
    const view = typedArrayView(bytes);
    if (view) return (view as Uint8Array).slice();
  }
  if (!copyingUnpackr) codec();
  const found = (deferred = new Set());
  let value: unknown;
  try {
    value = (copyingUnpackr as Msgpackr.Unpackr).unpack(asBuffer(bytes));
  } finally {
    deferred = null;
  }
  if (found.size === 0) return value;
  const own = copyDeferred(value, found);
  if (own !== null) return own;
  // A view in a place copyDeferred does not reach: every typed array copied now instead.
  eager = true;
  try {
    return (copyingUnpackr as Msgpackr.Unpackr).unpack(asBuffer(bytes));
  } finally {
    eager = false;
  }
}

/** During a decodeCopy (decoding is synchronous): the large typed arrays decoded as views, to be copied when read; null otherwise. */
let deferred: Set<ArrayBufferView> | null = null;
/** A decodeCopy that copies every typed array at once. */
let eager = false;

/**
 * From now on in this thread, a typed array inside a value decodes as a view
 * of the bytes it came in (where its alignment allows), as binary values
 * do, not as a copy of its own: a shuffle's partition of 64 pieces decodes
 * with no allocation and copy per piece. For executor threads, whose inputs
 * are theirs alone (or decoded with decodeCopy); elsewhere a small view
 * would keep a whole message's buffer alive.
 */
export function typedArrayViews(): void {
  codec();
  msgpackr().addExtension({ type: 0x74, unpack: readTypedArray });
}

/** msgpackr's typed-array extension (type code, then the elements), read as a view where aligned. */
function readTypedArray(data: Uint8Array): unknown {
  const code = data[0] as number;
  const Ctor = TYPED_ARRAYS[code];
  const offset = data.byteOffset + 1;
  const n = data.length - 1;
  if (Ctor && n % Ctor.BYTES_PER_ELEMENT === 0) {
    if (offset % Ctor.BYTES_PER_ELEMENT === 0) {
      const view = new Ctor(data.buffer as ArrayBuffer, offset, n / Ctor.BYTES_PER_ELEMENT);
      if (deferred === null) return view;
      if (n < LAZY_BYTES || eager) return copyOf(view);
      deferred.add(view);
      return view;
    }
  }
  // Unaligned, or an ArrayBuffer (16) or DataView (17): a copy, as msgpackr makes.
  // Uint8Array's slice (a copy): data is a Buffer, whose slice is a view.
  const buffer = Uint8Array.prototype.slice.call(data, 1).buffer;
  if (Ctor) return new Ctor(buffer);
  if (code === 16) return buffer;
  if (code === 17) return new DataView(buffer);
  throw new TypeError(`unknown typed array code ${code}`);
}

/** Decodes values encoded one after another into one buffer, in one call. */
export function decodeSequence(bytes: Uint8Array): unknown[] {
  if (bytes.length >= VIEW_BYTES && bytes[0] === 0xc9) {
    const view = typedArrayView(bytes);
    if (view) return [view];
  }
  return bytes.length === 0 ? [] : ((unpackr ?? codec().unpackr).unpackMultiple(asBuffer(bytes)) as unknown[]);
}

/** A typed array at least this large decodes as a view of the bytes it came in, not a copy. */
const VIEW_BYTES = 64 * 1024;

/** msgpackr's typed-array classes, by the type code of its typed-array extension. */
const TYPED_ARRAYS = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array] as const;

/**
 * `bytes` is exactly one typed array in msgpackr's extension (ext32 0x74:
 * type code, then the elements): that array, as a view of `bytes` where its
 * alignment allows. msgpackr would copy it: for a 16 MiB value, the one copy
 * and allocation too many on the way from a socket or a thread to the task.
 * Null when `bytes` is anything else (then decode normally).
 */
function typedArrayView(bytes: Uint8Array): ArrayBufferView | null {
  if (bytes[5] !== 0x74) return null;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getUint32(1) - 1;
  if (7 + n !== bytes.length) return null;
  const Ctor = TYPED_ARRAYS[bytes[6] as number];
  if (!Ctor) return null;
  const offset = bytes.byteOffset + 7;
  if (offset % Ctor.BYTES_PER_ELEMENT !== 0 || n % Ctor.BYTES_PER_ELEMENT !== 0) return null;
  return new Ctor(bytes.buffer as ArrayBuffer, offset, n / Ctor.BYTES_PER_ELEMENT);
}
