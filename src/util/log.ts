/**
 * pino logging: human-readable on a terminal, JSON lines otherwise. Logs go to
 * stderr so that stdout stays for results and addresses.
 */
import type { Logger } from 'pino';
import type * as Pino from 'pino';
import type PinoPretty from 'pino-pretty';
import { lazyPackage } from './lazy.ts';

const pinoPackage = lazyPackage<typeof Pino>('pino');
const pretty = lazyPackage<typeof PinoPretty>('pino-pretty');

export type { Logger };

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function createLogger(name: string, level: LogLevel = 'info', opts: { pretty?: boolean } = {}): Logger {
  const usePretty = opts.pretty ?? process.stderr.isTTY === true;
  const { pino } = pinoPackage();
  if (usePretty) {
    return pino({ name, level }, pretty()({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname', translateTime: 'HH:MM:ss.l' }));
  }
  return pino({ name, level }, pino.destination({ dest: 2, sync: true }));
}

/** A logger that drops everything (library use without logging). */
export function silentLogger(): Logger {
  return pinoPackage().pino({ level: 'silent' });
}
