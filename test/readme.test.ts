/**
 * The README is a user's guide whose programs run as shown: its first
 * program (the files of examples/first/, verbatim) against a real cluster
 * started in the program's directory, printing what its comments say, and
 * its job through `weft run`. Both import `weftjs` as a user's project does
 * (the built package, linked into node_modules).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/index.ts';
import { WEFT_BIN } from '../src/cluster/local-cluster.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const TSX = createRequire(import.meta.url).resolve('tsx/esm');
const dir = mkdtempSync(join(tmpdir(), 'weft-readme-'));
mkdirSync(join(dir, 'node_modules'));
symlinkSync(ROOT, join(dir, 'node_modules', 'weftjs'));
writeFileSync(join(dir, 'package.json'), '{ "type": "module" }');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The README's TypeScript block whose first line is `// NAME...`. */
function block(name: string): string {
  const found = [...README.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] as string).find((b) => b.startsWith(`// ${name}`));
  if (found === undefined) throw new Error(`the README has no block starting // ${name}`);
  return found;
}

describe('the README', () => {
  it('is a guide of at most 300 lines', () => {
    expect(README.split('\n').length).toBeLessThanOrEqual(300);
  });

  it("shows examples/first/ verbatim, and its first program prints what its comments say", async () => {
    const tasks = block('tasks.ts');
    const main = block('main.ts');
    expect(tasks).toBe(readFileSync(join(ROOT, 'examples/first/tasks.ts'), 'utf8'));
    expect(main).toBe(readFileSync(join(ROOT, 'examples/first/main.ts'), 'utf8'));
    writeFileSync(join(dir, 'tasks.ts'), tasks);
    // The cluster of the README's `npx weft cluster`, on a free port: tests take no fixed port.
    const cluster = await LocalCluster.start({ workers: 2, cwd: dir, dashboardPort: null });
    try {
      writeFileSync(join(dir, 'main.ts'), main.replaceAll('ws://127.0.0.1:8786', cluster.address));
      const r = spawnSync(process.execPath, ['--import', TSX, 'main.ts'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
      expect(r.stderr).toBe('');
      const promised = [...main.matchAll(/console\.log\(.*\); \/\/ (.*)$/gm)].map((m) => m[1]);
      expect(r.stdout.trim().split('\n')).toEqual(promised);
      expect(promised).toEqual(['20', '[ 1, 4, 9 ]', '532']);
    } finally {
      await cluster.close();
    }
  }, 90_000);

  it('runs its job with weft run', () => {
    writeFileSync(join(dir, 'defs.ts'), block('defs.ts'));
    const listed = spawnSync(process.execPath, [WEFT_BIN, 'list', 'defs.ts'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    expect(listed.stdout).toMatch(/daily\s+executor multi_or_in_process\s+2 step\(s\)/);
    const r = spawnSync(process.execPath, [WEFT_BIN, 'run', 'defs.ts', '--job', 'daily', '--json'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; message: string });
    expect(events.at(-1)?.type).toBe('RUN_SUCCESS');
    expect(events.some((e) => e.type === 'LOG' && e.message === 'attempt 0')).toBe(true);
  }, 60_000);
});
