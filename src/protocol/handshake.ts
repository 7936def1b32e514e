/**
 * The versioned handshake. The connecting side sends `hello` (role, protocol
 * version, token, and for a worker its description) as its first frame and
 * waits for `welcome` or `refused`; nothing else flows until then.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { WebSocket } from 'ws';
import type * as WsPackage from 'ws';
import { lazyPackage } from '../util/lazy.ts';
import { Connection, CLOSE_REFUSED, DEFAULT_LIMITS, DROPPED_BEFORE_HANDSHAKE, type ConnectionLimits, type ZodSchema } from './connection.ts';
import { messageSchemas, PROTOCOL_VERSION, type Hello, type WorkerInfo } from './messages.ts';
import { HandshakeError } from '../errors.ts';
import type { TlsOptions } from './tls.ts';

const wsPackage = lazyPackage<typeof WsPackage>('ws');

interface Op {
  op: string;
}

export interface ConnectOptions<In extends Op> {
  role: Hello['role'];
  token?: string | undefined;
  worker?: WorkerInfo | undefined;
  schema: ZodSchema<In>;
  limits?: ConnectionLimits;
  timeoutMs?: number;
  label?: string;
  /** For wss://: the CA to trust (default: the system's) and this side's certificate, if the server wants one. */
  tls?: TlsOptions | null | undefined;
}

/** What a failed connection most likely means, when the two sides disagree about TLS. */
function tlsHint(url: string, message: string): string {
  if (/Unexpected server response: 503/.test(message)) return ` (the server ${DROPPED_BEFORE_HANDSHAKE}: a flood of connections? try again)`;
  if (/Unexpected server response: 403/.test(message)) return ' (weft refuses WebSocket connections that carry an Origin header, as browsers send: allow one with --allow-origin)';
  if (url.startsWith('ws://') && /socket hang up|ECONNRESET|Unexpected server response: 400/i.test(message)) return ' (is it a TLS port? connect with wss://; or the server dropped it before its handshake, when too many connections wait there)';
  if (url.startsWith('wss://') && /wrong version number|packet length too long|EPROTO/i.test(message)) return ' (the port does not speak TLS: connect with ws://)';
  if (url.startsWith('wss://') && /self.signed|unable to verify|certificate/i.test(message)) return " (the server's certificate is not signed by a CA this side trusts: give the CA, --tls-ca)";
  return '';
}

/** Opens a WebSocket to `url`, performs the handshake and returns the ready connection. */
export function connect<In extends Op, Out extends Op>(url: string, opts: ConnectOptions<In>): Promise<Connection<In, Out>> {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  return new Promise((resolve, reject) => {
    let ws: WebSocket;
    try {
      ws = new (wsPackage().WebSocket)(url, {
        perMessageDeflate: false,
        maxPayload: limits.maxPayload,
        // A zero masking key: ws then skips masking here and unmasking at the
        // peer, a pass over every byte on each side. Random masks only protect
        // proxies from payloads chosen by scripts in browsers; weft's peers are
        // weft processes.
        generateMask: (mask: Buffer) => void mask.fill(0),
        ...(opts.tls?.ca ? { ca: opts.tls.ca } : {}),
        ...(opts.tls?.cert && opts.tls.key ? { cert: opts.tls.cert, key: opts.tls.key } : {}),
      });
    } catch (err) {
      reject(new HandshakeError(`cannot connect to ${url}: ${(err as Error).message}`));
      return;
    }
    let settled = false;
    const done = (err: Error | null, conn?: Connection<In, Out>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        ws.terminate();
        reject(err);
      } else if (conn) resolve(conn);
    };
    const timer = setTimeout(() => done(new HandshakeError(`no handshake reply from ${url} within ${opts.timeoutMs ?? 10_000} ms`)), opts.timeoutMs ?? 10_000);
    ws.once('error', (err) => done(new HandshakeError(`cannot connect to ${url}: ${err.message}${tlsHint(url, err.message)}`)));
    ws.once('open', () => {
      const conn = new Connection<Op, Out>(ws, messageSchemas().handshakeReply, limits, opts.label ?? url);
      conn.onClose((code, reason) => done(new HandshakeError(`${url} closed the connection during the handshake (${code}${reason ? `: ${reason}` : ''})`)));
      conn.onMessages((msgs) => {
        const reply = msgs[0] as { op: 'welcome' } | { op: 'refused'; reason: string } | undefined;
        if (!reply || reply.op === 'refused') {
          done(new HandshakeError(`${url} refused the connection: ${reply && 'reason' in reply ? reply.reason : 'no reason given'}`));
          return;
        }
        done(null, conn.expect(opts.schema));
      });
      const msg: Hello = { op: 'hello', role: opts.role, version: PROTOCOL_VERSION, token: opts.token, worker: opts.worker };
      if (msg.token === undefined) delete msg.token;
      if (msg.worker === undefined) delete msg.worker;
      (conn as unknown as Connection<Op, Hello>).send(msg);
      conn.flush();
    });
  });
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time token check. */
export function tokenMatches(expected: string | undefined, given: string | undefined): boolean {
  if (!expected) return true;
  if (given === undefined) return false;
  return timingSafeEqual(digest(expected), digest(given));
}

/** A peer must say hello this soon after its WebSocket opens (the door's deadline counts from the TCP connection). */
const HELLO_TIMEOUT_MS = 4000;

export interface AcceptOptions {
  token?: string | undefined;
  limits?: ConnectionLimits;
  label?: string;
  /** Roles this server accepts. */
  roles: Hello['role'][];
  /** Unique id for the connection (sent back in `welcome`). */
  id: string;
  /** The schema of the messages a peer of this role may send after the handshake. */
  schemaFor: (role: Hello['role']) => ZodSchema<Op>;
}

/**
 * Server side: waits for `hello`, checks version, role and token, answers.
 * Resolves with the hello and the connection (its schema still unset: call
 * `expect`), or null when the peer was refused or went away.
 */
export function accept(ws: WebSocket, opts: AcceptOptions): Promise<{ hello: Hello; conn: Connection<Op, Op> } | null> {
  ws.on('error', () => {});
  return new Promise((resolve) => {
    const conn = new Connection<Hello, Op>(ws, messageSchemas().hello, opts.limits ?? DEFAULT_LIMITS, opts.label ?? 'peer');
    // The door (listen.ts) closes the socket at its deadline too; this answers first, with a reason.
    const timer = setTimeout(() => {
      conn.fail(`no hello within ${HELLO_TIMEOUT_MS / 1000} s`, CLOSE_REFUSED);
      resolve(null);
    }, HELLO_TIMEOUT_MS);
    conn.onClose(() => {
      clearTimeout(timer);
      resolve(null);
    });
    conn.onMessages((msgs) => {
      clearTimeout(timer);
      const h = msgs[0];
      const refuse = (reason: string): void => {
        conn.send({ op: 'refused', reason } as Op);
        conn.close(CLOSE_REFUSED, reason);
        resolve(null);
      };
      if (!h || msgs.length !== 1) return refuse('the first frame must hold exactly one hello message');
      if (h.version !== PROTOCOL_VERSION) return refuse(`protocol version ${h.version} is not supported; this side speaks version ${PROTOCOL_VERSION}`);
      if (!opts.roles.includes(h.role)) return refuse(`role '${h.role}' is not accepted here (accepted: ${opts.roles.join(', ')})`);
      if (!tokenMatches(opts.token, h.token)) return refuse(h.token === undefined ? 'a token is required (--token or WEFT_TOKEN)' : 'wrong token');
      if (h.role === 'worker' && !h.worker) return refuse('a worker must describe itself in hello.worker');
      conn.send({ op: 'welcome', version: PROTOCOL_VERSION, id: opts.id } as Op);
      conn.flush();
      resolve({ hello: h, conn: conn.expect(opts.schemaFor(h.role)) as unknown as Connection<Op, Op> });
    });
  });
}
