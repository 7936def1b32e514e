/**
 * The run's coordinator: where the step processes of a step-delegating run
 * connect back to the launching process. It binds 127.0.0.1 on a free port
 * by default (`coordinator: { host, port, advertiseAddress }` for steps on
 * other machines) and speaks msgpack over WebSocket; a handler with a
 * private channel to its steps (the fork handler's IPC) attaches it instead.
 * The protocol is the same either way (step/messages.ts).
 *
 * Each attempt of each step has a token, an HMAC of the run, step and
 * attempt under a secret made for this run: a connection must open with it,
 * and each attempt connects once. A connection without a valid hello, or
 * with a malformed frame, is closed; nothing else is affected.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { WebSocket, WebSocketServer } from 'ws';
import type { z } from 'zod';
import { lazySchemas } from '../../util/zod.ts';
import type { CoordinatorConfig } from './config.ts';
import { RateLimitedLines, untrusted } from '../../util/untrusted.ts';
import { decode, encode } from '../../protocol/codec.ts';
import { listen } from '../../protocol/listen.ts';
import { stepEventSchema } from '../event-schema.ts';
import type { RunEvent } from '../events.ts';
import { MAX_STEP_FRAME, type ToStep } from '../step/messages.ts';

const HELLO_TIMEOUT_MS = 30_000;

/** A two-way channel to one step process: a WebSocket, or a handler's own (IPC). */
export interface StepChannel {
  send(msg: ToStep): void;
  /** Receives each message from the step, then the close (once). */
  listen(onMessage: (msg: unknown) => void, onClose: (why: string) => void): void;
  close(why: string): void;
}

/** Where the coordinator reports one attempt (the control loop's side). */
export interface AttemptSink {
  /** The step's inputs, msgpack each, sent when it connects. */
  inputs(): Uint8Array[];
  /** It connected (from where, over a WebSocket). */
  connected(from: { pid: number; host: string } | null): void;
  events(evs: RunEvent[]): void;
  /** The step said it has sent everything. */
  done(): void;
  /** Its channel closed before `done`. */
  lost(why: string): void;
}

const protocol = lazySchemas((z) => ({
  hello: z.object({ t: z.literal('hello'), runId: z.string(), stepKey: z.string(), attempt: z.number().int().min(0), token: z.string().max(256), pid: z.number().int(), host: z.string().max(255) }).strict(),
  fromStep: z.discriminatedUnion('t', [z.object({ t: z.literal('events'), evs: z.array(stepEventSchema()) }).strict(), z.object({ t: z.literal('done') }).strict()]),
}));

interface Attempt {
  sink: AttemptSink;
  /** Its inputs exist: it gets them as soon as it has connected (a step started ahead waits). */
  ready: boolean;
  channel: StepChannel | null;
  /** Connected once already: a second connection with the same token is refused. */
  used: boolean;
  done: boolean;
}

export class StepCoordinator {
  private readonly secret = randomBytes(32);
  private readonly attempts = new Map<string, Attempt>();
  private readonly channels = new Set<StepChannel>();
  private server: Promise<{ server: WebSocketServer; url: string }> | null = null;
  private closed = false;
  /** Refused connections go into the run's events, a few at a time: a stranger knocking cannot fill them. */
  private readonly refusals: RateLimitedLines;

  constructor(
    readonly runId: string,
    private readonly config: CoordinatorConfig,
    private readonly warn: (message: string) => void,
  ) {
    this.refusals = new RateLimitedLines(warn, 'step connections refused');
  }

  /** The token of one attempt of one step. */
  token(stepKey: string, attempt: number): string {
    return createHmac('sha256', this.secret).update(JSON.stringify([this.runId, stepKey, attempt])).digest('base64url');
  }

  /** The ws:// address steps connect to; the server starts listening on first use. */
  async url(): Promise<string> {
    if (this.closed) throw new Error('the coordinator is closed');
    this.server ??= this.listen();
    return (await this.server).url;
  }

  /** Expects an attempt to connect; `ready` false: it was started ahead, and gets its inputs after `go`. */
  expect(stepKey: string, attempt: number, sink: AttemptSink, ready = true): void {
    this.attempts.set(attemptKey(stepKey, attempt), { sink, ready, channel: null, used: false, done: false });
  }

  /** The inputs of an attempt started ahead exist now: it starts once connected. */
  go(stepKey: string, attempt: number): void {
    const a = this.attempts.get(attemptKey(stepKey, attempt));
    if (!a || a.ready) return;
    a.ready = true;
    a.channel?.send({ t: 'start', inputs: a.sink.inputs() });
  }

  /** Stops listening to an attempt; its channel, if still open, is closed. */
  forget(stepKey: string, attempt: number): void {
    const key = attemptKey(stepKey, attempt);
    const a = this.attempts.get(key);
    this.attempts.delete(key);
    if (a?.channel) this.drop(a.channel, 'the step is over');
  }

  /** Tells a connected attempt to stop (its op sees ctx.signal abort). */
  cancel(stepKey: string, attempt: number): void {
    this.attempts.get(attemptKey(stepKey, attempt))?.channel?.send({ t: 'cancel' });
  }

  /**
   * Serves a channel a handler made itself to one attempt (the fork
   * handler's IPC): private to that step, so it is bound at once, with no
   * hello; the rest of the protocol is the same as a WebSocket's.
   */
  attach(channel: StepChannel, stepKey: string, attempt: number): void {
    this.serve(channel, { stepKey, attempt });
  }

  /** Says how many refused connections were not logged one by one (before the run's last events). */
  flushRefusals(): void {
    this.refusals.flush();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.refusals.flush();
    for (const c of [...this.channels]) this.drop(c, 'the run is over');
    this.attempts.clear();
    const s = await this.server?.catch(() => null);
    if (!s) return;
    for (const ws of s.server.clients) ws.terminate();
    await new Promise<void>((resolve) => s.server.close(() => resolve()));
  }

  private async listen(): Promise<{ server: WebSocketServer; url: string }> {
    const { server, address, door } = await listen(this.config.host, this.config.port, { maxPayload: MAX_STEP_FRAME });
    // A step's hello binds it to its attempt: only then is it let past the door.
    server.on('connection', (ws) => this.serve(wsChannel(ws), undefined, () => door.admitted(ws)));
    server.on('error', (err) => this.warn(`coordinator server error: ${err.message}`));
    return { server, url: this.config.advertiseAddress ?? address };
  }

  private drop(channel: StepChannel, why: string): void {
    this.channels.delete(channel);
    channel.close(why);
  }

  private serve(channel: StepChannel, attached?: { stepKey: string; attempt: number }, admitted: () => void = () => {}): void {
    this.channels.add(channel);
    let bound: Attempt | null = null;
    let runKey = '';
    const timer = setTimeout(() => this.drop(channel, `no hello within ${HELLO_TIMEOUT_MS / 1000} s`), HELLO_TIMEOUT_MS);
    timer.unref();
    const refuse = (why: string): void => {
      clearTimeout(timer);
      this.refusals.line(`refused a step connection: ${why}`);
      this.drop(channel, why);
    };
    /**
     * A bound step that broke the protocol: dropped, and its attempt told at
     * once (a channel of the handler's own, the fork IPC, says nothing when
     * closed from this side; a WebSocket's close would say it later).
     */
    const cut = (why: string): void => {
      this.drop(channel, why);
      if (bound && bound.channel === channel && !bound.done) {
        bound.channel = null;
        bound.sink.lost(why);
      }
    };
    const bind = (a: Attempt, stepKey: string, from: { pid: number; host: string } | null): void => {
      clearTimeout(timer);
      admitted();
      a.used = true;
      a.channel = channel;
      bound = a;
      runKey = stepKey;
      a.sink.connected(from);
      if (a.ready) channel.send({ t: 'start', inputs: a.sink.inputs() });
    };
    channel.listen(
      (raw) => {
        if (!this.channels.has(channel)) return;
        if (bound === null) {
          const h = protocol().hello.safeParse(raw);
          if (!h.success) return refuse(`malformed hello: ${issue(h.error)}`);
          const m = h.data;
          const a = this.attempts.get(attemptKey(m.stepKey, m.attempt));
          // One answer for an unknown step and a wrong token: the refusal tells a guesser nothing.
          // What a stranger says of itself is escaped and cut before it reaches the run's events.
          if (m.runId !== this.runId || !a || !sameToken(m.token, this.token(m.stepKey, m.attempt))) return refuse(`no step ${untrusted(m.stepKey)} attempt ${m.attempt} of run ${untrusted(m.runId, 64)} expects this token`);
          if (a.used) return refuse(`step ${untrusted(m.stepKey)} attempt ${m.attempt} is already connected`);
          return bind(a, m.stepKey, { pid: m.pid, host: m.host });
        }
        if (bound.channel !== channel || bound.done) return;
        const r = protocol().fromStep.safeParse(raw);
        if (!r.success) return cut(`malformed message from step ${runKey}: ${issue(r.error)}`);
        if (r.data.t === 'done') {
          bound.done = true;
          bound.sink.done();
          return;
        }
        const evs = r.data.evs as RunEvent[];
        const stranger = evs.find((ev) => ev.runId !== this.runId || ev.stepKey !== runKey);
        if (stranger) return cut(`step ${runKey} sent an event of ${stranger.runId}/${stranger.stepKey}`);
        bound.sink.events(evs);
      },
      (why) => {
        clearTimeout(timer);
        this.channels.delete(channel);
        if (bound && bound.channel === channel && !bound.done) {
          bound.channel = null;
          bound.sink.lost(why);
        }
      },
    );
    if (attached) {
      const a = this.attempts.get(attemptKey(attached.stepKey, attached.attempt));
      if (!a || a.used) refuse(`no step ${attached.stepKey} attempt ${attached.attempt} waits for a channel`);
      else bind(a, attached.stepKey, null);
    }
  }
}

function attemptKey(stepKey: string, attempt: number): string {
  return `${attempt}\u0000${stepKey}`;
}

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function issue(err: z.ZodError): string {
  const i = err.issues[0];
  return i ? `${i.path.join('.') || '(message)'}: ${i.message}` : 'invalid';
}

/** A WebSocket as a step channel: one msgpack message per binary frame. */
function wsChannel(ws: WebSocket): StepChannel {
  let closing = false;
  return {
    send: (msg) => {
      if (ws.readyState === ws.OPEN) ws.send(encode(msg));
    },
    listen: (onMessage, onClose) => {
      ws.on('message', (data, isBinary) => {
        if (closing) return;
        if (!isBinary || !(data instanceof Buffer)) {
          closing = true;
          ws.close(1003, 'expected binary msgpack frames');
          return;
        }
        let msg: unknown;
        try {
          msg = decode(data);
        } catch (err) {
          closing = true;
          ws.close(1007, `malformed frame: ${(err as Error).message}`.slice(0, 120));
          return;
        }
        onMessage(msg);
      });
      ws.on('close', (code, reason) => onClose(`connection closed (${code}${reason.length > 0 ? `: ${reason.toString()}` : ''})`));
      ws.on('error', () => {}); // 'close' follows
    },
    close: (why) => {
      closing = true;
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(1008, why.slice(0, 120));
    },
  };
}
