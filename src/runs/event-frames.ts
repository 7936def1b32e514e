/**
 * A run's events on their way from the launcher to its run writer thread
 * (writer.ts): each event is written into a batch's buffer as it is
 * recorded, and the buffer is handed over to the thread whole (transferred,
 * not copied), which makes each event's row (its columns and JSON body).
 *
 * Why bytes and not the events' JSON: a run of 1,000 in-process steps
 * records 3,000 events. Held until their batch went, then turned into JSON
 * lines, they cost the launcher 4 ms a run, most of it the garbage
 * collector's: the held events outlived the young generation, and the JSON
 * was more garbage. Written here as they come, they leave next to none,
 * and escaping the message as JSON moves to the thread
 * (bench/README.md, run storage).
 *
 * One event's frame, numbers little-endian, each string as a u32 byte
 * length and its UTF-8:
 *
 *   u8   its type's place in RUN_EVENT_TYPES
 *   u8   flags: which of the optional parts follow (F_*)
 *   u8   its message's kind (stepMessageKind; 0: the message follows)
 *   f64  timestamp
 *   str  step key                  (F_STEP_KEY)
 *   str  message                   (kind 0; a step's start, end and
 *                                   outputs, most events, make theirs
 *                                   again from the step key and output)
 *   str  output                    (F_OUTPUT)
 *   f64  attempt                   (F_ATTEMPT)
 *   f64  pid                       (F_PID)
 *   str  the rest of its body      (F_REST; JSON members, see restOfBody)
 *
 * `stored` is two flags: whether it is there, and its value. Frames never
 * leave the process, so the format can change with any version.
 */
import { RUN_EVENT_TYPES, stepMessage, stepMessageKind, type RunEvent, type RunEventType } from '../jobs/events.ts';
import { eventBody, restOfBody, type EventColumns } from './records.ts';

const F_STEP_KEY = 1;
const F_OUTPUT = 2;
const F_STORED = 4;
const F_STORED_TRUE = 8;
const F_ATTEMPT = 16;
const F_PID = 32;
const F_REST = 64;

const TYPE_CODES = new Map<string, number>(RUN_EVENT_TYPES.map((t, i) => [t, i]));

/** A batch's first buffer: 200 step events take about 12 KiB. */
const FIRST_SIZE = 16 * 1024;

/** Events written into one buffer, for the writer thread. */
export class EventFrames {
  private buf = Buffer.allocUnsafeSlow(FIRST_SIZE);
  private at = 0;
  /** Events written. */
  count = 0;

  add(ev: RunEvent): void {
    const code = TYPE_CODES.get(ev.type);
    if (code === undefined) throw new TypeError(`a run event of type ${JSON.stringify(ev.type)}, which weft does not know`);
    const { stepKey, output, stored, attempt, pid } = ev;
    const rest = restOfBody(ev);
    let flags = 0;
    if (stepKey !== null) flags |= F_STEP_KEY;
    if (typeof output === 'string') flags |= F_OUTPUT;
    if (typeof stored === 'boolean') flags |= stored ? F_STORED | F_STORED_TRUE : F_STORED;
    if (typeof attempt === 'number') flags |= F_ATTEMPT;
    if (typeof pid === 'number') flags |= F_PID;
    if (rest !== '') flags |= F_REST;
    const kind = stepMessageKind(ev);
    this.room(11);
    this.buf[this.at] = code;
    this.buf[this.at + 1] = flags;
    this.buf[this.at + 2] = kind;
    this.buf.writeDoubleLE(ev.timestamp, this.at + 3);
    this.at += 11;
    if (stepKey !== null) this.string(stepKey);
    if (kind === 0) this.string(ev.message);
    if (typeof output === 'string') this.string(output);
    this.room(16);
    if (typeof attempt === 'number') this.at = this.buf.writeDoubleLE(attempt, this.at);
    if (typeof pid === 'number') this.at = this.buf.writeDoubleLE(pid, this.at);
    if (rest !== '') this.string(rest);
    this.count++;
  }

  /** The frames written: a view of a buffer of its own, which can be transferred. */
  bytes(): Uint8Array {
    return new Uint8Array(this.buf.buffer, 0, this.at);
  }

  /** A string's length and UTF-8. Step keys and messages are mostly ASCII: copied char by char, with no call into C++ for a few bytes. */
  private string(s: string): void {
    const n = s.length;
    this.room(4 + 3 * n);
    const b = this.buf;
    const start = this.at + 4;
    let o = start;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      b[o++] = c;
    }
    // From the first char that is not ASCII (never half of a surrogate pair: both halves are above 0x80) on, as UTF-8.
    if (i < n) o += b.write(i === 0 ? s : s.slice(i), o);
    b.writeUInt32LE(o - start, this.at);
    this.at = o;
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(bigger, 0, 0, this.at);
    this.buf = bigger;
  }
}

/** The events' columns from their frames (in the writer thread). Throws a RangeError on frames cut short. */
export function readEventFrames(bytes: Uint8Array): EventColumns[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: EventColumns[] = [];
  let o = 0;
  const string = (): string => {
    const n = b.readUInt32LE(o);
    const end = o + 4 + n;
    if (end > b.length) throw new RangeError(`an event frame is cut short at byte ${o}`);
    const s = b.toString('utf8', o + 4, end);
    o = end;
    return s;
  };
  const number = (): number => {
    const v = b.readDoubleLE(o);
    o += 8;
    return v;
  };
  while (o < b.length) {
    const type = RUN_EVENT_TYPES[b[o] as number] as RunEventType | undefined;
    if (type === undefined) throw new RangeError(`an event frame at byte ${o} has type code ${b[o]}, which is no event type`);
    const flags = b.readUInt8(o + 1);
    const kind = b.readUInt8(o + 2);
    o += 3;
    const timestamp = number();
    const stepKey = flags & F_STEP_KEY ? string() : null;
    const written = kind === 0 ? string() : null;
    const output = flags & F_OUTPUT ? string() : undefined;
    const message = written ?? stepMessage(kind, stepKey, output);
    if (message === null) throw new RangeError(`an event frame before byte ${o} has message kind ${kind}, which it cannot make`);
    const stored = flags & F_STORED ? (flags & F_STORED_TRUE) !== 0 : undefined;
    const attempt = flags & F_ATTEMPT ? number() : undefined;
    const pid = flags & F_PID ? number() : undefined;
    const rest = flags & F_REST ? string() : '';
    out.push({ type, stepKey, timestamp, body: eventBody(message, { output, stored, attempt, pid }, rest) });
  }
  return out;
}
