/**
 * A message stream over one WebSocket.
 *
 * Sending: messages queue up and leave as one msgpack frame (an array) at the
 * end of the current event-loop turn, or at once when the batch is full, so a
 * lone message waits no timer; under load, frames are at least 3 ms apart, so
 * a burst of a thousand results costs one frame. While more than `highWaterMark` bytes are unacknowledged by the
 * socket, batches keep growing instead of being written (backpressure).
 *
 * Large values: a message may carry `blobs` (msgpack bytes of values). A blob
 * larger than `rawThreshold` is not copied into the batch: it is replaced by
 * `null`, its length goes to `raw`, and it follows the batch as its own raw
 * frames, split at `maxFrame`. A batch larger than `maxFrame` is preceded by a
 * `$parts` message and sent in parts. Receivers reassemble both.
 *
 * Receiving: each frame is decoded and every message parsed with the
 * connection's schema; a malformed frame or message closes this connection
 * only, after telling the peer what was wrong. A message is delivered once
 * its own raw frames are in, and frames are handled for at most
 * TURN_BUDGET_MS per event-loop turn (the rest wait, socket paused), a
 * budget the connections of a scheduler or worker share (turn-budget.ts).
 */
import type { WebSocket, RawData } from 'ws';
import type { z } from 'zod';
import { decode, encode, withKeyColumns } from './codec.ts';
import { messageSchemas } from './messages.ts';
import { ProtocolError } from '../errors.ts';
import { objectList } from '../util/lists.ts';
import { TurnBudget, type HeldFrames } from './turn-budget.ts';

/** Under load, frames on one connection are at least this far apart (messages batch meanwhile). */
const MIN_FLUSH_INTERVAL_MS = 3;
/**
 * A batch encoding to more than this goes as frames of about FRAME_TARGET
 * bytes, whole messages each: the receiver decodes and handles each frame as
 * it arrives, instead of a graph's many parts (queued while the socket was
 * backed up) in one long step that stalls it.
 */
const SPLIT_ABOVE_BYTES = 1024 * 1024;
const FRAME_TARGET_BYTES = 256 * 1024;
/**
 * Frames are handled for at most this long per event-loop turn; the rest
 * wait, with their sockets paused, for the next turns. libuv reads a busy
 * socket up to 32 times in one turn and ws hands over every frame at once:
 * a client's graph of two million tasks, read part after part in one turn,
 * kept the scheduler from its timers and its workers for 0.6-1 s.
 */
export const TURN_BUDGET_MS = 50;

const NO_BYTES = Buffer.alloc(0);

export const CLOSE_PROTOCOL_ERROR = 4400;
export const CLOSE_REFUSED = 4401;
/** What a connection a port dropped before its handshake is told (listen.ts), and what its client says of it. */
export const DROPPED_BEFORE_HANDSHAKE = 'dropped before its handshake: too many connections were waiting at this port';
export const CLOSE_SHUTDOWN = 4000;

export interface ConnectionLimits {
  /** Largest frame ws accepts; frames we send stay below it. */
  maxPayload: number;
  /** Messages per batch before an immediate flush. */
  maxBatch: number;
  /** Blobs above this many bytes travel as raw frames. */
  rawThreshold: number;
  /** Unacknowledged bytes above which batches wait. */
  highWaterMark: number;
  /** The handling time per turn this connection shares with others (default: a budget of its own). */
  turn?: TurnBudget;
}

export const DEFAULT_LIMITS: ConnectionLimits = {
  maxPayload: 64 * 1024 * 1024,
  maxBatch: 5000,
  rawThreshold: 64 * 1024,
  highWaterMark: 16 * 1024 * 1024,
};

interface Op {
  op: string;
}

interface BlobCarrier {
  blobs: (Uint8Array | null)[];
  raw?: number[] | undefined;
}

function hasBlobs(msg: object): msg is BlobCarrier {
  return Array.isArray((msg as Partial<BlobCarrier>).blobs);
}

export type ZodSchema<T> = z.ZodType<T>;

/**
 * Takes a batch's messages in order. It may stop early, once the turn's
 * budget is spent (Connection.turnSpent), by returning how many it handled:
 * the rest are handed to it again in a later turn, before anything newer.
 */
export type MessageHandler<In> = (msgs: In[]) => number | void;

export class Connection<In extends Op, Out extends Op> implements HeldFrames {
  private queue = objectList<object>();
  private rawOut: Uint8Array[] = [];
  private flushScheduled = false;
  private urgentScheduled = false;
  private lastFlush = 0;
  private inflight = 0;
  private closed = false;
  private closeHandlers: ((code: number, reason: string) => void)[] = [];
  private messageHandler: MessageHandler<In> | null = null;
  /** Batches that arrived before a handler was set (right after a handshake). */
  private early: In[][] = [];
  /**
   * Messages of the last batch not yet delivered because they, or one before
   * them, wait for raw frames; `heldEnds[i]`: raw values received by the
   * time `held[i]` is whole. Each message is delivered as soon as its own raw
   * values are in (in order), not when the whole batch's are: a batch of 32
   * replies of 32 MiB each starts work after the first, not after 1 GiB.
   */
  private held: In[] | null = null;
  private heldEnds: number[] = [];
  private heldAt = 0;
  private expected: number[] = [];
  private chunks: Buffer[] = [];
  private chunkBytes = 0;
  private received: Buffer[] = [];
  /** Raw values already placed into delivered messages. */
  private placed = 0;
  /** A `$parts` batch being reassembled: frames left, bytes so far. */
  private partsLeft = 0;
  private parts: Buffer[] = [];
  /** The handshake is done (expect was called): large batches in `$parts` may come. */
  private handshaken = false;
  /** What the peer said was wrong, in an `error` message before it closed. */
  private peerError: string | null = null;
  private readonly turn: TurnBudget;
  /** Frames that arrived after the turn's budget was spent, in order (the socket is paused meanwhile). */
  private backlog: ({ data: RawData; isBinary: boolean } | { msgs: In[] })[] = [];
  /** Bytes of payload written to the socket (for metrics). */
  bytesSent = 0;
  bytesReceived = 0;
  /** When the peer's last frame came (performance.now()): a peer sending anything is not silent (the client's watch). */
  lastFrameAt = performance.now();

  constructor(
    readonly ws: WebSocket,
    private schema: ZodSchema<In>,
    readonly limits: ConnectionLimits = DEFAULT_LIMITS,
    readonly label = 'peer',
  ) {
    this.turn = limits.turn ?? new TurnBudget(TURN_BUDGET_MS);
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: RawData, isBinary: boolean) => this.onFrame(data, isBinary));
    ws.on('close', (code: number, reason: Buffer) => this.onClosed(code, reason.toString()));
    // Socket errors end in 'close'; listening here keeps them from being thrown.
    ws.on('error', () => {});
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /**
   * Replaces the schema for incoming messages (after the handshake). Messages
   * arriving before the next `onMessages` call are held, not lost.
   */
  expect<T extends Op>(schema: ZodSchema<T>): Connection<T, Out> {
    const self = this as unknown as Connection<T, Out>;
    self.schema = schema;
    self.handshaken = true;
    self.messageHandler = null;
    return self;
  }

  /** Sets the handler; messages that arrived before it are delivered now. */
  onMessages(handler: MessageHandler<In>): void {
    this.messageHandler = handler;
    const early = this.early;
    this.early = [];
    for (const msgs of early) this.deliver(msgs);
  }

  onClose(handler: (code: number, reason: string) => void): void {
    if (this.closed) queueMicrotask(() => handler(1006, 'already closed'));
    else this.closeHandlers.push(handler);
  }

  /**
   * Queues a message for the next frame. `urgent`: a small request or reply
   * someone waits on (a lock's acquire), sent at the end of this turn even
   * under load, rather than after the interval that lets bursts share frames.
   */
  send(msg: Out, urgent = false): void {
    if (this.closed) return;
    let out: object = msg;
    if (hasBlobs(msg)) out = this.extractRaw(msg);
    this.queue.push(withKeyColumns(out));
    if (this.queue.length >= this.limits.maxBatch) this.flush();
    else if (urgent && !this.urgentScheduled) {
      this.urgentScheduled = true;
      setImmediate(() => {
        this.urgentScheduled = false;
        this.flush();
      });
    } else if (!this.flushScheduled) {
      this.flushScheduled = true;
      // Idle: flush at the end of this turn. Busy (flushed under 3 ms ago):
      // wait out the interval so that bursts share frames.
      const wait = MIN_FLUSH_INTERVAL_MS - (performance.now() - this.lastFlush);
      const run = (): void => {
        this.flushScheduled = false;
        this.flush();
      };
      if (wait > 0) setTimeout(run, wait);
      else setImmediate(run);
    }
  }

  /** Writes the queued batch now, unless the socket is backed up. */
  flush(): void {
    if (this.closed || this.queue.length === 0) return;
    if (this.inflight > this.limits.highWaterMark) return; // resumed by the write callback
    this.lastFlush = performance.now();
    const batch = this.queue;
    const raw = this.rawOut;
    this.queue = objectList<object>();
    this.rawOut = [];
    const frame = encode(batch);
    if (frame.length > SPLIT_ABOVE_BYTES && batch.length > 1) {
      // Encoded again a message at a time (rare: only batches this large pay for it), then grouped.
      let group: Buffer[] = [];
      let bytes = 0;
      for (const msg of batch) {
        const e = encode(msg);
        if (bytes + e.length > FRAME_TARGET_BYTES && group.length > 0) {
          this.writeFrame(arrayOf(group, bytes));
          group = [];
          bytes = 0;
        }
        group.push(e);
        bytes += e.length;
      }
      if (group.length > 0) this.writeFrame(arrayOf(group, bytes));
    } else {
      this.writeFrame(frame);
    }
    const size = this.maxFrame();
    for (const blob of raw) {
      for (let off = 0; off < blob.length; off += size) this.write(blob.subarray(off, Math.min(blob.length, off + size)));
    }
  }

  /** One encoded batch: in one frame, or announced by `$parts` and cut into frames the peer accepts. */
  private writeFrame(frame: Buffer): void {
    if (frame.length <= this.limits.maxPayload - 1024) {
      this.write(frame);
      return;
    }
    const size = this.maxFrame();
    const n = Math.ceil(frame.length / size);
    this.write(encode([{ op: '$parts', n, total: frame.length }]));
    for (let i = 0; i < n; i++) this.write(frame.subarray(i * size, Math.min(frame.length, (i + 1) * size)));
  }

  /** Sends `{op:'error'}` and closes with a protocol-error code. */
  fail(message: string, code = CLOSE_PROTOCOL_ERROR): void {
    if (this.closed) return;
    this.queue.push({ op: 'error', message });
    this.flush();
    this.close(code, message);
  }

  close(code = 1000, reason = ''): void {
    if (this.closed) return;
    this.flush();
    // Close reasons are limited to 123 bytes by the WebSocket protocol.
    const short = Buffer.from(reason).subarray(0, 120).toString();
    try {
      this.ws.close(code, short);
    } catch {
      this.ws.terminate();
    }
    this.markClosed(code, reason);
  }

  private maxFrame(): number {
    return Math.max(1024, this.limits.maxPayload - 1024);
  }

  private extractRaw(msg: BlobCarrier & Op): object {
    let raw: number[] | undefined;
    let blobs = msg.blobs;
    for (let i = 0; i < blobs.length; i++) {
      const b = blobs[i];
      if (b && b.length > this.limits.rawThreshold) {
        if (!raw) {
          raw = [];
          blobs = blobs.slice();
        }
        raw.push(b.length);
        this.rawOut.push(b);
        blobs[i] = null;
      }
    }
    return raw ? { ...msg, blobs, raw } : msg;
  }

  private write(data: Uint8Array): void {
    const n = data.length;
    this.inflight += n;
    this.bytesSent += n;
    this.ws.send(data, { binary: true }, () => {
      this.inflight -= n;
      if (this.inflight <= this.limits.highWaterMark && this.queue.length > 0 && !this.flushScheduled) this.flush();
    });
  }

  private onFrame(data: RawData, isBinary: boolean): void {
    if (this.closed) return;
    this.lastFrameAt = performance.now();
    if (this.backlog.length > 0) {
      this.backlog.push({ data, isBinary });
      return;
    }
    if (!this.turn.allows()) {
      this.backlog.push({ data, isBinary });
      this.ws.pause();
      this.turn.hold(this);
      return;
    }
    this.handleFrame(data, isBinary);
  }

  /** Handles the next frame held back (the turn budget serves held connections in turn); reading resumes once none is left. */
  handleOne(): boolean {
    const f = this.backlog.shift();
    if (f && !this.closed) {
      if ('msgs' in f) this.deliver(f.msgs);
      else this.handleFrame(f.data, f.isBinary);
    }
    if (this.closed) {
      this.backlog = [];
      return false;
    }
    if (this.backlog.length > 0) return true;
    this.ws.resume();
    return false;
  }

  private handleFrame(data: RawData, isBinary: boolean): void {
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    this.bytesReceived += buf.length;
    try {
      if (!isBinary) throw new ProtocolError('text frames are not part of the weft protocol; send binary msgpack frames');
      if (this.partsLeft > 0) {
        this.parts.push(buf);
        if (--this.partsLeft === 0) {
          const whole = Buffer.concat(this.parts);
          this.parts = [];
          this.onBatch(whole);
        }
      } else if (this.held) {
        this.onRaw(buf);
      } else {
        this.onBatch(buf);
      }
    } catch (err) {
      const message = err instanceof ProtocolError ? err.message : `malformed frame: ${(err as Error).message}`;
      this.fail(message);
    }
  }

  private onBatch(buf: Buffer): void {
    let decoded: unknown;
    try {
      decoded = decode(buf);
    } catch (err) {
      throw new ProtocolError(`frame is not valid msgpack: ${(err as Error).message}`);
    }
    if (!Array.isArray(decoded)) throw new ProtocolError('a frame must be a msgpack array of messages');
    const first: unknown = decoded[0];
    if (decoded.length === 1 && isObject(first) && first['op'] === '$parts') {
      // Before the handshake only a hello may come: no announcement of frames to buffer for a stranger.
      if (!this.handshaken) throw new ProtocolError('$parts before the handshake: only a hello may come first');
      const parts = messageSchemas().partsMsg.safeParse(first);
      if (!parts.success || parts.data.n > 1_000_000) throw new ProtocolError('$parts: n must be a positive integer');
      this.partsLeft = parts.data.n;
      return;
    }
    const msgs: In[] = [];
    const expected: number[] = [];
    const ends: number[] = [];
    for (let i = 0; i < decoded.length; i++) {
      const item: unknown = decoded[i];
      if (isObject(item) && item['op'] === 'error') {
        // The peer says why it is about to close: keep it for the close handlers.
        const e = messageSchemas().errorMsg.safeParse(item);
        if (e.success) this.peerError = e.data.message;
        continue;
      }
      const parsed = this.schema.safeParse(item);
      if (!parsed.success) throw new ProtocolError(describeInvalid(decoded[i], i, parsed.error));
      const msg = parsed.data;
      if (hasBlobs(msg) && msg.raw) {
        const nulls = msg.blobs.reduce((k, b) => (b === null ? k + 1 : k), 0);
        if (nulls !== msg.raw.length) throw new ProtocolError(`message ${i} (${msg.op}): ${msg.raw.length} raw lengths for ${nulls} missing blobs`);
        for (const len of msg.raw) expected.push(len);
      }
      msgs.push(msg);
      ends.push(expected.length);
    }
    if (msgs.length === 0) return;
    if (expected.length === 0) {
      this.deliver(msgs);
      return;
    }
    this.held = msgs;
    this.heldEnds = ends;
    this.heldAt = 0;
    this.expected = expected;
    this.received = [];
    this.placed = 0;
    this.skipEmptyBlobs();
  }

  private onRaw(buf: Buffer): void {
    const want = this.expected[this.received.length];
    if (want === undefined) throw new ProtocolError('unexpected raw frame');
    this.chunks.push(buf);
    this.chunkBytes += buf.length;
    if (this.chunkBytes > want) throw new ProtocolError(`raw value longer than announced (${this.chunkBytes} > ${want} bytes)`);
    if (this.chunkBytes === want) {
      this.received.push(this.chunks.length === 1 ? buf : Buffer.concat(this.chunks, want));
      this.chunks = [];
      this.chunkBytes = 0;
      this.skipEmptyBlobs();
    }
  }

  /** Zero-length raw blobs have no frame: account for them; then deliver the messages now whole. */
  private skipEmptyBlobs(): void {
    while (this.received.length < this.expected.length && this.expected[this.received.length] === 0) {
      this.received.push(NO_BYTES);
    }
    const held = this.held;
    if (!held) return;
    let end = this.heldAt;
    while (end < held.length && (this.heldEnds[end] as number) <= this.received.length) {
      const msg = held[end] as In;
      if (hasBlobs(msg) && msg.raw) {
        for (let i = 0; i < msg.blobs.length; i++) {
          if (msg.blobs[i] !== null) continue;
          msg.blobs[i] = this.received[this.placed] ?? null;
          this.received[this.placed++] = NO_BYTES; // the message holds it now; this batch need not
        }
        delete msg.raw;
      }
      end++;
    }
    if (end === this.heldAt) return;
    const ready = held.slice(this.heldAt, end);
    this.heldAt = end;
    if (end === held.length) {
      this.held = null;
      this.heldEnds = [];
      this.expected = [];
      this.received = [];
    }
    this.deliver(ready);
  }

  private deliver(msgs: In[]): void {
    if (!this.messageHandler) {
      this.early.push(msgs);
      return;
    }
    try {
      const handled = this.messageHandler(msgs);
      if (typeof handled === 'number' && handled < msgs.length && !this.closed) {
        // The handler stopped at the turn's budget: the rest come first when this connection is served next.
        this.backlog.unshift({ msgs: msgs.slice(handled) });
        this.ws.pause();
        this.turn.hold(this);
      }
    } catch (err) {
      // A bug in a handler must not take the process down: report it, drop this connection.
      this.onInternalError(err);
      this.fail(`internal error while handling ${msgs[0]?.op ?? 'a message'}: ${(err as Error).message}`, 1011);
    }
  }

  /** This turn's budget for handling frames is spent (a handler of many costly messages may stop there: see MessageHandler). */
  get turnSpent(): boolean {
    return this.turn.spent();
  }

  /** Called when a message handler throws; the owner logs it. */
  onInternalError: (err: unknown) => void = (err) => {
    process.emitWarning(`weft: ${this.label} handler failed: ${(err as Error).stack ?? String(err)}`);
  };

  private onClosed(code: number, reason: string): void {
    // The peer's own words (sent before closing) are fuller than the 123-byte close reason.
    this.markClosed(code, this.peerError ?? reason);
  }

  private markClosed(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.rawOut = [];
    this.backlog = [];
    const handlers = this.closeHandlers;
    this.closeHandlers = [];
    for (const h of handlers) h(code, reason);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A one-line, actionable description of why a message failed validation. */
export function describeInvalid(value: unknown, index: number, error: z.ZodError): string {
  const op = isObject(value) && typeof value['op'] === 'string' ? `'${value['op']}'` : '(no op)';
  const issue = error.issues[0];
  const where = issue && issue.path.length > 0 ? issue.path.join('.') : 'message';
  const what = issue ? issue.message : 'invalid';
  return `invalid message ${index} ${op}: ${where}: ${what}`;
}

/** A msgpack array of items encoded one by one: its header, then the items' bytes. */
function arrayOf(items: readonly Buffer[], bytes: number): Buffer {
  const n = items.length;
  const header = n < 16 ? Buffer.from([0x90 | n]) : n < 0x10000 ? Buffer.from([0xdc, n >> 8, n & 0xff]) : Buffer.from([0xdd, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([header, ...items], header.length + bytes);
}
