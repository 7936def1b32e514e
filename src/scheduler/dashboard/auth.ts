/**
 * Who may read the dashboard of a scheduler that has a token: a browser
 * with a session (the login form sets its id in a cookie), or a program
 * with the token itself (`Authorization: Bearer TOKEN`).
 *
 * The cookie holds a random session id, never the token: browsers do not
 * keep cookies apart by port, so any service on the same host could read
 * it, and an id can expire and be forgotten where a token cannot. It is
 * HttpOnly, SameSite=Strict, Secure under TLS, and lasts `sessionMs`.
 * Wrong tokens are counted per address: past `failuresPerSecond` in a
 * second, that address gets 429 until the second is over, and the failures
 * are logged (a few lines, then a count).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { RateLimitedLines } from '../../util/untrusted.ts';

export const SESSION_COOKIE = 'weft_session';

export interface AuthOptions {
  token: string;
  /** Served over TLS: the cookie is Secure. */
  secure: boolean;
  log: (line: string) => void;
  sessionMs?: number;
  failuresPerSecond?: number;
  /** Sessions kept at most (the oldest goes first). */
  maxSessions?: number;
}

export type Verdict = 'ok' | 'refused' | 'limited';

export class DashboardAuth {
  private readonly sessions = new Map<string, number>();
  /** Per address: its wrong tokens in the current second, and when that second started. */
  private readonly failures = new Map<string, { since: number; n: number }>();
  private readonly lines: RateLimitedLines;
  private readonly sessionMs: number;
  private readonly failuresPerSecond: number;
  private readonly maxSessions: number;

  constructor(private readonly o: AuthOptions) {
    this.lines = new RateLimitedLines(o.log, 'wrong dashboard tokens');
    this.sessionMs = o.sessionMs ?? 12 * 3600_000;
    this.failuresPerSecond = o.failuresPerSecond ?? 5;
    this.maxSessions = o.maxSessions ?? 1000;
  }

  /** A request's session cookie or bearer token. */
  check(req: IncomingMessage, now = Date.now()): Verdict {
    if (this.limited(req, now)) return 'limited';
    const id = cookie(req.headers.cookie, SESSION_COOKIE);
    if (id !== undefined) {
      const until = this.sessions.get(id);
      if (until !== undefined && until > now) return 'ok';
      if (until !== undefined) this.sessions.delete(id);
    }
    const header = req.headers.authorization;
    if (header === undefined) return 'refused';
    if (header.startsWith('Bearer ') && sameToken(header.slice(7), this.o.token)) return 'ok';
    return this.failed(req, now, 'a wrong bearer token');
  }

  /** The login form's token: a Set-Cookie value for a new session, or why not. */
  login(req: IncomingMessage, given: string, now = Date.now()): { cookie: string } | Verdict {
    if (this.limited(req, now)) return 'limited';
    if (!sameToken(given, this.o.token)) return this.failed(req, now, 'a wrong login');
    if (this.sessions.size >= this.maxSessions) this.sessions.delete(this.sessions.keys().next().value as string);
    const id = randomBytes(32).toString('base64url');
    this.sessions.set(id, now + this.sessionMs);
    const attrs = ['Path=/', 'HttpOnly', 'SameSite=Strict', `Max-Age=${Math.floor(this.sessionMs / 1000)}`, ...(this.o.secure ? ['Secure'] : [])];
    return { cookie: `${SESSION_COOKIE}=${id}; ${attrs.join('; ')}` };
  }

  private limited(req: IncomingMessage, now: number): boolean {
    const f = this.failures.get(address(req));
    return f !== undefined && now - f.since < 1000 && f.n >= this.failuresPerSecond;
  }

  private failed(req: IncomingMessage, now: number, what: string): Verdict {
    const from = address(req);
    let f = this.failures.get(from);
    if (f === undefined || now - f.since >= 1000) {
      if (this.failures.size >= 10_000) this.failures.clear();
      f = { since: now, n: 0 };
      this.failures.set(from, f);
    }
    f.n++;
    this.lines.line(`dashboard: ${what} from ${from}`);
    return 'refused';
  }
}

function address(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? '?';
}

/** A cookie's value as sent (no decoding: weft's are plain; a malformed header matches nothing). */
function cookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function sameToken(given: string, token: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}
