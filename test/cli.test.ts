/**
 * The CLI as one piece: every command's help is built from the flags it
 * parses, every command takes --log-level and the connecting ones
 * --token-file, usage lines name only flags that exist, durations read
 * one way, and `weft --version` answers.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { allFlags, helpText } from '../src/cli/args.ts';
import { COMMANDS } from '../src/cli/commands.ts';
import { WEFT_BIN } from '../src/cluster/local-cluster.ts';
import { formatDuration, parseDuration } from '../src/util/duration.ts';

const dir = mkdtempSync(join(tmpdir(), 'weft-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function weft(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [WEFT_BIN, ...args], { encoding: 'utf8', cwd: dir, timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('the weft command line', () => {
  it('every command takes --log-level and --help; those that connect to a scheduler take --token-file', () => {
    const connecting = COMMANDS.filter((c) => c.connects).map((c) => c.name);
    expect(connecting.sort()).toEqual(['cluster', 'run', 'scheduler', 'worker']);
    for (const cmd of COMMANDS.filter((c) => !c.raw)) {
      const help = helpText(cmd);
      expect(help, cmd.name).toMatch(/--log-level LEVEL/);
      expect(help, cmd.name).toMatch(/--help/);
      if (cmd.connects) expect(help, cmd.name).toMatch(/--token-file FILE/);
      // What the help shows is what the command parses.
      for (const f of allFlags(cmd).filter((x) => !x.hidden)) expect(help, `${cmd.name} --${f.name}`).toContain(`--${f.name}`);
      // Usage lines name only flags the command has, and never the token itself.
      const names = new Set(allFlags(cmd).map((f) => f.name));
      for (const m of cmd.usage.matchAll(/--([a-z-]+)/g)) expect(names.has(m[1] as string), `${cmd.name} usage: --${m[1]}`).toBe(true);
      expect(cmd.usage, cmd.name).not.toMatch(/--token\b(?!-)/);
      // Duration flags say so.
      for (const f of cmd.flags) if (/timeout|grace|interval|^lock$/.test(f.name)) expect(f.arg, `${cmd.name} --${f.name}`).toBe('DURATION');
    }
  });

  it('weft --version prints the package version', () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const v of ['--version', '-v']) expect(weft(v).out.trim()).toBe(`weft ${version}`);
  });

  it('run, list and bundle take --log-level; run takes --token-file with --address; bad values name the flag', () => {
    writeFileSync(join(dir, 'defs.mjs'), `import { Definitions, inProcessExecutor, job, op } from '${new URL('../src/index.ts', import.meta.url).href}';
const talk = op({ name: 'talk' }, (ctx) => { ctx.log.debug('quiet'); ctx.log.warn('loud'); return 1; });
export const j = job({ name: 'j', executorDef: inProcessExecutor }, () => talk());
export default new Definitions({ jobs: [j] });
`);
    const listed = weft('list', 'defs.mjs', '--log-level', 'warn');
    expect(listed.code).toBe(0);
    expect(listed.out).toMatch(/j\s+executor in_process/);
    const all = weft('run', 'defs.mjs', '--job', 'j');
    expect(all.code).toBe(0);
    expect(all.out).toMatch(/LOG talk \[debug\] quiet/);
    const some = weft('run', 'defs.mjs', '--job', 'j', '--log-level', 'warn');
    expect(some.code).toBe(0);
    expect(some.out).not.toMatch(/quiet/);
    expect(some.out).toMatch(/LOG talk \[warn\] loud/);
    expect(weft('bundle', '--log-level', 'nope', 'defs.mjs').err).toMatch(/--log-level: expected one of trace, debug/);
    writeFileSync(join(dir, 'token'), 'a-token-of-sixteen+\n');
    const tokenAlone = weft('run', 'defs.mjs', '--job', 'j', '--token-file', join(dir, 'token'));
    expect(tokenAlone.code).toBe(2);
    expect(tokenAlone.err).toMatch(/--token-file goes with --address/);
    const bad = weft('scheduler', '--port', '0', '--heartbeat-timeout', '15 seconds');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--heartbeat-timeout: expected a duration like 30s, 500ms or 2m \(a plain number is seconds\)/);
    const unknown = weft('list', 'defs.mjs', '--bogus');
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/weft list: Unknown option '--bogus'.*See weft list --help/);
  });

  it('reads durations one way: 30s, 500ms, 2m, 1h, or plain seconds', () => {
    expect(['30s', '500ms', '2m', '1h', '3', '0.25', '1.5s'].map((d) => parseDuration(d))).toEqual([30_000, 500, 120_000, 3_600_000, 3000, 250, 1500]);
    for (const bad of ['', 's', '5x', '-1', '1 d', '1e3']) expect(parseDuration(bad), bad).toBeNull();
    expect([500, 3000, 1500, 120_000, 3_600_000].map(formatDuration)).toEqual(['500ms', '3s', '1.5s', '2m', '1h']);
  });
});
