/**
 * weft as a user installs it: the packed tarball (dist/, built by `npm test`
 * before vitest runs) installed into a fresh project, then used from a plain
 * .mjs program, from strict TypeScript (`--module nodenext`), and through
 * its `weft` bin. The install is lean: the optional peer dependencies (tsx,
 * esbuild, the executors' client libraries) are not installed until the
 * test adds tsx, and what needs one names it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;
const require = createRequire(import.meta.url);
const TSC = require.resolve('typescript/bin/tsc');
const NODE_TYPES = (JSON.parse(readFileSync(require.resolve('@types/node/package.json'), 'utf8')) as { version: string }).version;

const dir = mkdtempSync(join(tmpdir(), 'weft-consumer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(cmd: string, args: string[], timeout = 60_000): { code: number | null; out: string; err: string } {
  const r = spawnSync(cmd, args, { cwd: dir, encoding: 'utf8', timeout, env: { ...process.env, WEFT_LOG_LEVEL: 'warn' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const files: Record<string, string> = {
  'package.json': JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
  // Task modules: JavaScript, and TypeScript (workers load it through tsx, once installed).
  'tasks.mjs': 'export function inc(x) {\n  return x + 1;\n}\n',
  'tasks.ts': 'export function inc(x: number): number {\n  return x + 1;\n}\n',
  // The job layer on its own, as a code location in a container would import it.
  'defs.mjs': `import { Definitions, job, op } from 'weftjs/jobs';
const one = op({ name: 'one' }, () => 1);
const add = op({ name: 'add' }, (ctx, x) => { ctx.log.info('adding'); return x + 41; });
export const answer = job({ name: 'answer' }, () => add(one()));
export default new Definitions({ jobs: [answer] });
`,
  'app.mjs': `import { LocalCluster } from 'weftjs';
import defs from './defs.mjs';
const cluster = await LocalCluster.start({ workers: 1 });
const client = await cluster.client();
const task = await client.submit(new URL('./tasks.mjs', import.meta.url).href + '#inc', 1);
const typed = await client.submit(new URL('./tasks.ts', import.meta.url).href + '#inc', 1).then((v) => v, (e) => e.message);
await client.close();
await cluster.close();
const r = await defs.executeJob('answer');
const pid = r.eventsForNode('add').find((e) => e.type === 'STEP_START').pid;
console.log(JSON.stringify({ task, typed, success: r.success, answer: r.outputForNode('add'), otherProcess: pid !== process.pid }));
`,
  'app.mts': `import { Client, Definitions, executor, job, op, type ExecutionContext, type RunEvent, type StepHandler } from 'weftjs';
import { Definitions as JobsDefinitions, dockerExecutor, type DockerConfig } from 'weftjs/jobs';
export const docker: DockerConfig | null = null;
export const pinned = dockerExecutor.name;
const one = op({ name: 'one' }, (): number => 1);
export const j = job({ name: 'j' }, () => {
  one();
});
export const mine = executor({ name: 'mine' }, () => ({
  async *execute(ctx: ExecutionContext): AsyncGenerator<RunEvent> {
    yield ctx.engineEvent('nothing to do');
  },
}));
export const handler: StepHandler | null = null;
export const sameDefinitions: typeof Definitions = JobsDefinitions;
export async function remote(): Promise<number> {
  const c = await Client.connect('ws://127.0.0.1:8786');
  const n: unknown = await c.submit((x: number) => x + 1, 1);
  return n as number;
}
export default new Definitions({ jobs: [j] });
`,
  'tsconfig.json': JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] }, files: ['app.mts'] }),
};

beforeAll(() => {
  const packed = JSON.parse(execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8' })) as { filename: string; files: { path: string }[] }[];
  const tarball = packed[0];
  if (!tarball) throw new Error('npm pack made no tarball');
  writeFileSync(join(dir, 'files.json'), JSON.stringify(tarball.files.map((f) => f.path)));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const r = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', `./${tarball.filename}`, `@types/node@${NODE_TYPES}`], 120_000);
  if (r.code !== 0) throw new Error(`npm install of the packed tarball failed:\n${r.err}`);
  writeFileSync(join(dir, 'install.log'), r.err);
}, 180_000);

describe('the npm package', () => {
  it('ships the compiled code, declarations and the CLI, not the tests', () => {
    const shipped = JSON.parse(readFileSync(join(dir, 'files.json'), 'utf8')) as string[];
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/launch.mjs', 'dist/cli/step.mjs', 'dist/util/thread-entry.mjs', 'dist/dashboard/app.js', 'bin/weft.js', 'examples/pi.ts']) expect(shipped).toContain(f);
    expect(shipped.some((f) => f.startsWith('test/'))).toBe(false);
  });

  it('names only files that exist as having side effects (esbuild keeps them in step bundles)', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { sideEffects: string[] };
    for (const f of pkg.sideEffects) expect(existsSync(join(ROOT, f)), f).toBe(true);
  });

  it('installs without the optional peer dependencies: no install script but msgpackr native addon', () => {
    const log = readFileSync(join(dir, 'install.log'), 'utf8');
    const scripts = log.split('\n').filter((l) => /install-scripts\s+\S+@\d/.test(l));
    expect(scripts.map((l) => /install-scripts\s+(\S+)@/.exec(l)?.[1]).filter((p) => p !== 'msgpackr-extract')).toEqual([]);
    for (const p of ['tsx', 'esbuild', 'dockerode', 'bullmq', 'ioredis', '@kubernetes/client-node', 'preact']) expect(existsSync(join(dir, 'node_modules', p)), p).toBe(false);
  });

  it('a plain .mjs program runs a task on a LocalCluster and a job in step processes (no esbuild: unbundled); a TypeScript task names tsx', () => {
    const r = run('node', ['app.mjs']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out.trim().split('\n').at(-1) ?? '{}')).toEqual({
      task: 2,
      typed: expect.stringMatching(/loading the TypeScript module .*tasks\.ts needs the package tsx, not installed here: npm install tsx/),
      success: true,
      answer: 42,
      otherProcess: true,
    });
  });

  it('a warm step process (no esbuild: the code location unbundled) runs the edited code location for the next step, and says so', () => {
    writeFileSync(join(dir, 'warm.mjs'), `import { writeFileSync } from 'node:fs';
import { loadDefinitions } from 'weftjs/jobs';
const file = new URL('./warm-defs.mjs', import.meta.url);
const source = (n) => "import { Definitions, job, multiprocessExecutor, op } from 'weftjs/jobs';\\n" +
  "const n = op({ name: 'n' }, () => [" + n + ", process.pid]);\\n" +
  "export default new Definitions({ jobs: [job({ name: 'w', executorDef: multiprocessExecutor.configured({ mode: 'warm', maxConcurrent: 1 }) }, () => void n())] });\\n";
writeFileSync(file, source(1));
const defs = await loadDefinitions(file.href);
const first = await defs.executeJob('w');
writeFileSync(file, source(2));
const second = await defs.executeJob('w');
const said = second.allEvents.filter((e) => e.type === 'LOG' && e.message.includes('warm-defs.mjs changed')).map((e) => e.message);
console.log(JSON.stringify({ first: first.outputForNode('n'), second: second.outputForNode('n'), said }));
process.exit(0);
`);
    const r = run('node', ['warm.mjs']);
    expect(r.code, r.err).toBe(0);
    const out = JSON.parse(r.out.trim().split('\n').at(-1) ?? '{}') as { first: [number, number]; second: [number, number]; said: string[] };
    expect(out.first[0]).toBe(1);
    // The same process (warm), the new code.
    expect(out.second).toEqual([2, out.first[1]]);
    expect(out.said).toHaveLength(1);
    expect(out.said[0]).toMatch(/^code location .*warm-defs\.mjs changed \(.*warm-defs\.mjs\): what starts from now on uses the new code \(version 1\)/);
  });

  it('an executor whose package is not installed fails the run naming it; weft bundle names esbuild', () => {
    writeFileSync(join(dir, 'docker-defs.mjs'), `import { Definitions, dockerExecutor, job, op } from 'weftjs/jobs';
export const d = job({ name: 'd', executorDef: dockerExecutor.configured({ image: 'x' }) }, () => op({ name: 'one' }, () => 1)());
export default new Definitions({ jobs: [d] });
`);
    const r = run(join(dir, 'node_modules', '.bin', 'weft'), ['run', 'docker-defs.mjs', '--job', 'd']);
    expect(r.code).toBe(1);
    expect(r.out + r.err).toMatch(/the docker executor needs the package dockerode, not installed here: npm install dockerode/);
    const bundled = run(join(dir, 'node_modules', '.bin', 'weft'), ['bundle', 'defs.mjs']);
    expect(bundled.code).not.toBe(0);
    expect(bundled.err).toMatch(/weft bundle needs the package esbuild, not installed here: npm install esbuild/);
  });

  it('a strict TypeScript program (module nodenext) type-checks against the declarations', () => {
    const r = run('node', [TSC, '-p', '.']);
    expect(r.out + r.err).toBe('');
    expect(r.code).toBe(0);
  });

  it('the bin runs the compiled CLI', () => {
    const help = run(join(dir, 'node_modules', '.bin', 'weft'), ['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^weft: a distributed task-graph runtime/);
    const r = run(join(dir, 'node_modules', '.bin', 'weft'), ['run', 'defs.mjs', '--job', 'answer', '--json']);
    expect(r.code).toBe(0);
    const events = r.out.trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    expect(events.at(-1)?.type).toBe('RUN_SUCCESS');
    // weft step (the bundled entry) refuses to run without its arguments, naming where they go.
    const step = run(join(dir, 'node_modules', '.bin', 'weft'), ['step']);
    expect(step.code).toBe(2);
    expect(step.err).toMatch(/WEFT_STEP_ARGS/);
  });

  it('with tsx and esbuild added, TypeScript tasks load and weft bundle prebuilds a code location', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    const add = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', `tsx@${pkg.devDependencies['tsx']}`, `esbuild@${pkg.devDependencies['esbuild']}`], 120_000);
    expect(add.code, add.err).toBe(0);
    const r = run('node', ['app.mjs']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.out.trim().split('\n').at(-1) ?? '{}') as { typed: unknown }).typed).toBe(2);
    const bundled = run(join(dir, 'node_modules', '.bin', 'weft'), ['bundle', 'defs.mjs']);
    expect(bundled.code).toBe(0);
    expect(existsSync(bundled.out.trim())).toBe(true);
  }, 180_000);
});
