/**
 * Who may reach a port, and with what. A token holder can run any code on
 * every worker (as with Dask), so off loopback a port needs a token, and a
 * token long enough not to be guessed.
 */
import { networkInterfaces } from 'node:os';
import { ConfigError } from '../errors.ts';

/** Shortest token accepted on a port reachable from other machines. */
export const MIN_TOKEN_LENGTH = 16;

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Refuses to serve `what` on `host` off loopback without a token, or with a short one. */
export function checkExposure(what: string, host: string, token: string | undefined): void {
  if (isLoopback(host)) return;
  if (!token) {
    throw new ConfigError(`refusing to listen on ${host} without a token: anyone who can reach the ${what} could run code on your workers. Set WEFT_TOKEN (or --token-file), or bind 127.0.0.1.`);
  }
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new ConfigError(`the token is ${token.length} characters; off loopback (${host}) the ${what} needs at least ${MIN_TOKEN_LENGTH}, e.g. from \`openssl rand -hex 24\``);
  }
}

/**
 * The address others reach a server at: `contact` if given, else the bound
 * host, else (bound to every interface) this machine's first non-internal
 * IPv4 address.
 */
export function contactAddress(bound: string, host: string, contact: string | undefined): string {
  if (contact) return contact;
  if (host !== '0.0.0.0' && host !== '::' && host !== '[::]') return bound;
  const port = new URL(bound).port;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return `${new URL(bound).protocol}//${a.address}:${port}`;
  }
  throw new ConfigError(`bound to ${host}, and this machine has no external IPv4 address to advertise: say where peers reach this worker with --contact-address ws://HOST:PORT`);
}
