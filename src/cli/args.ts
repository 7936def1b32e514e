/**
 * The CLI's commands are declared once (main.ts): their flags, each with its
 * argument and help. Parsing and the help text both come from that
 * declaration, so a flag the help shows is a flag the command takes, and
 * every command takes `--log-level` (and `--token-file` where it connects to
 * a weft scheduler). Values are checked here, with errors naming the flag.
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { ConfigError } from '../errors.ts';
import { readTls, type TlsOptions } from '../protocol/tls.ts';
import { formatDuration, parseDuration } from '../util/duration.ts';
import { LOG_LEVELS, type LogLevel } from '../util/log.ts';

export interface Flag {
  /** Without the dashes. */
  name: string;
  /** What follows the flag in the help (`PORT`, `FILE`); none: a boolean flag. */
  arg?: string;
  multiple?: boolean;
  help: string;
  /** Accepted but not shown (kept for old scripts). */
  hidden?: boolean;
}

export interface Command {
  name: string;
  /** One line, for `weft --help`. */
  summary: string;
  /** After `weft NAME`: positionals and the main flags, e.g. `ADDRESS [--nthreads N]`. */
  usage: string;
  /** Paragraphs after the usage line. */
  about?: string;
  flags: Flag[];
  /** Takes `--token-file` (it connects to a weft scheduler, or serves one). */
  connects?: boolean;
  /** Default of --log-level. */
  logLevel?: LogLevel;
  /** Text after the options. */
  footer?: string;
  /** Parses its own arguments (`args.argv`). */
  raw?: boolean;
  run(args: Args): Promise<void>;
}

/** Parsed flags and positionals of one command. */
export interface Args {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  /** As given, after the command's name. */
  argv: string[];
}

/** The flags every command takes, after its own. */
export function allFlags(cmd: Command): Flag[] {
  const level = cmd.logLevel ?? 'info';
  return [
    ...cmd.flags,
    ...(cmd.connects
      ? [
          { name: 'token-file', arg: 'FILE', help: 'the shared secret (token) in FILE, readable by its owner only (or WEFT_TOKEN)' },
          { name: 'token', arg: 'T', help: 'the token itself: shown to every user in ps; prefer --token-file', hidden: true },
        ]
      : []),
    { name: 'log-level', arg: 'LEVEL', help: `${LOG_LEVELS.join('|')} (default ${level}, or WEFT_LOG_LEVEL)` },
    { name: 'help', help: 'show this help' },
  ];
}

export function parse(cmd: Command, argv: string[]): Args {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {};
  for (const f of allFlags(cmd)) options[f.name] = { type: f.arg === undefined ? 'boolean' : 'string', ...(f.multiple ? { multiple: true } : {}) };
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { values: values as Args['values'], positionals, argv };
  } catch (err) {
    return fail(`weft ${cmd.name}: ${(err as Error).message}. See weft ${cmd.name} --help.`);
  }
}

/** The command's help: usage, about, every flag (its own, then the common ones). */
export function helpText(cmd: Command): string {
  const shown = allFlags(cmd).filter((f) => !f.hidden);
  const left = (f: Flag): string => `--${f.name}${f.arg ? ` ${f.arg}` : ''}`;
  const width = Math.min(34, Math.max(...shown.map((f) => left(f).length)) + 2);
  const lines = shown.map((f) => {
    const l = left(f);
    const pad = l.length + 2 > width ? `\n  ${' '.repeat(width)}` : ' '.repeat(width - l.length);
    return `  ${l}${pad}${f.help.replace(/\n/g, `\n  ${' '.repeat(width)}`)}`;
  });
  return [`Usage: weft ${cmd.name}${cmd.usage ? ` ${cmd.usage}` : ''}`, ...(cmd.about ? ['', cmd.about] : []), '', 'Options:', ...lines, ...(cmd.footer ? ['', cmd.footer] : [])].join('\n');
}

export function fail(message: string): never {
  throw new ConfigError(message);
}

export function str(args: Args, name: string): string | undefined {
  const v = args.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function flag(args: Args, name: string): boolean {
  return args.values[name] === true;
}

function integer(args: Args, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = str(args, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < min || n > max) fail(`--${name}: expected a whole number ${max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`} (got '${v}')`);
  return n;
}

export const positiveInt = (args: Args, name: string, fallback: number): number => integer(args, name, fallback, 1);
export const nonNegativeInt = (args: Args, name: string, fallback: number): number => integer(args, name, fallback, 0);
export const port = (args: Args, name: string, fallback: number): number => integer(args, name, fallback, 0, 65535);

/** A duration flag in milliseconds: `30s`, `500ms`, `2m`, or plain seconds. */
export function duration(args: Args, name: string, fallbackMs: number, opts: { min?: number } = {}): number {
  const v = str(args, name);
  if (v === undefined) return fallbackMs;
  const ms = parseDuration(v);
  const min = opts.min ?? 0;
  if (ms === null || ms < min) fail(`--${name}: expected a duration like 30s, 500ms or 2m (a plain number is seconds)${min > 1 ? ` of at least ${formatDuration(min)}` : min === 1 ? ' above 0' : ''} (got '${v}')`);
  return ms;
}

export function level(args: Args, fallback: LogLevel): LogLevel {
  const v = str(args, 'log-level') ?? process.env['WEFT_LOG_LEVEL'] ?? fallback;
  if (!(LOG_LEVELS as readonly string[]).includes(v)) fail(`--log-level: expected one of ${LOG_LEVELS.join(', ')} (got '${v}')`);
  return v as LogLevel;
}

/**
 * The shared secret: from --token-file (a file only its owner reads), else
 * WEFT_TOKEN, else --token. A token on a command line is visible to every
 * user of the machine (ps), so that one gets a warning.
 */
export function token(args: Args, log?: { warn: (msg: string) => void }): string | undefined {
  const file = str(args, 'token-file');
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      fail(`--token-file: cannot read ${file}: ${(err as Error).message}`);
    }
    const t = text.trim();
    if (!t) fail(`--token-file: ${file} is empty`);
    return t;
  }
  const inline = str(args, 'token');
  if (inline !== undefined) log?.warn('--token puts the token on the command line, where every user of this machine can read it (ps): prefer --token-file or WEFT_TOKEN');
  return inline ?? process.env['WEFT_TOKEN'];
}

/** The TLS files named by --tls-cert, --tls-key, --tls-ca, read (null: no TLS). */
export function tls(args: Args): TlsOptions | null {
  return readTls({ cert: str(args, 'tls-cert'), key: str(args, 'tls-key'), ca: str(args, 'tls-ca'), requireClientCert: flag(args, 'tls-require-client-cert') });
}

/** --memory-limit: bytes ('4GB', '512MiB', '1e9'), 'auto' (this machine's memory), or 0 (none). */
export function memoryLimit(value: string | undefined): number {
  if (value === undefined || value === '0') return 0;
  if (value === 'auto') return totalmem();
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?$/i.exec(value.trim());
  if (!m) fail(`--memory-limit: expected a size like 4GB or 512MiB, 'auto' or 0 (got '${value}')`);
  const units: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };
  return Math.round(Number(m[1]) * (units[(m[2] ?? 'b').toLowerCase()] as number));
}

export function resources(args: Args): Record<string, number> {
  const out: Record<string, number> = {};
  const given = args.values['resources'];
  for (const v of (Array.isArray(given) ? given : []).flatMap((s) => s.split(','))) {
    if (!v.trim()) continue;
    const m = /^([A-Za-z_][\w.-]*)=(\d+(?:\.\d+)?)$/.exec(v.trim());
    if (!m) fail(`--resources: expected NAME=NUMBER (like GPU=2), got '${v}'`);
    out[m[1] as string] = Number(m[2]);
  }
  return out;
}

export const TLS_FLAGS: Flag[] = [
  { name: 'tls-cert', arg: 'FILE', help: 'serve TLS (wss://) with this certificate (and --tls-key)' },
  { name: 'tls-key', arg: 'FILE', help: "the certificate's private key" },
  { name: 'tls-ca', arg: 'FILE', help: "trust certificates signed by this CA (default: the system's)" },
  { name: 'tls-require-client-cert', help: 'accept only peers with a certificate signed by --tls-ca' },
];

/** Browsers' pages refused by default (see protocol/listen.ts). */
export const ORIGIN_FLAG: Flag = { name: 'allow-origin', arg: 'ORIGIN', multiple: true, help: "a web origin (https://app.example) whose pages may open WebSockets here\n(repeatable; none by default: weft refuses every browser page)" };
export const HOST_FLAG: Flag = { name: 'allow-host', arg: 'NAME', multiple: true, help: 'a host name the dashboard answers besides IP addresses and localhost\n(repeatable; a name it does not know is refused, against DNS rebinding)' };

/** A repeatable flag's values. */
export function repeated(args: Args, name: string): string[] {
  const v = args.values[name];
  return Array.isArray(v) ? v : [];
}

export const DURATIONS_NOTE = 'Durations read 30s, 500ms or 2m; a plain number is seconds.';
