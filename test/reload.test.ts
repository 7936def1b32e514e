/**
 * Edited code while processes run (real `weft` processes, real files): a
 * worker and a queue worker notice that a module they imported changed,
 * even through a file it imports; what starts after the edit runs the new
 * code, what runs through it finishes on the old, and the log says so.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Client, queueExecutor, type ExecutorDefinition } from '../src/index.ts';
import { executeJob } from '../src/jobs/run.ts';
import { loadDefinitions } from '../src/jobs/location.ts';
import { WEFT_BIN } from '../src/cluster/local-cluster.ts';
import { startRedis } from './helpers/redis.ts';
import { waitFor } from './helpers/util.ts';

const dir = mkdtempSync(join(tmpdir(), 'weft-reload-'));
writeFileSync(join(dir, 'package.json'), '{ "type": "module" }');
const procs: ChildProcess[] = [];
afterAll(async () => {
  for (const p of procs) {
    if (p.exitCode !== null || p.signalCode !== null) continue;
    const exited = once(p, 'exit');
    p.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

/** Starts `weft ARGS`; resolves with it once it printed its JSON line, collecting what it logs (JSON lines on stderr). */
async function weft(args: string[]): Promise<{ proc: ChildProcess; ready: Record<string, string>; logs: { msg: string }[] }> {
  const proc = spawn(process.execPath, [WEFT_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WEFT_TOKEN: '' } });
  procs.push(proc);
  const logs: { msg: string }[] = [];
  createInterface({ input: proc.stderr as NodeJS.ReadableStream }).on('line', (l) => {
    if (l.startsWith('{')) logs.push(JSON.parse(l) as { msg: string });
  });
  for await (const line of createInterface({ input: proc.stdout as NodeJS.ReadableStream })) {
    if (line.startsWith('{')) return { proc, ready: JSON.parse(line) as Record<string, string>, logs };
  }
  throw new Error(`weft ${args[0]} printed nothing`);
}

describe('edited code', () => {
  it('a worker imports an edited task module anew (a file it imports changed): new tasks run the new code, a running one finishes on the old', async () => {
    const tasks = join(dir, 'tasks.ts');
    const helper = join(dir, 'helper.ts');
    writeFileSync(helper, 'export const base: number = 10;\n');
    writeFileSync(
      tasks,
      `import { existsSync, writeFileSync } from 'node:fs';
import { base } from './helper.ts';
export function value(n: number): number {
  return base + n;
}
export async function slow(started: string, go: string): Promise<number> {
  writeFileSync(started, '');
  while (!existsSync(go)) await new Promise((r) => setTimeout(r, 10));
  return base;
}
`,
    );
    const fn = (name: string): string => `${pathToFileURL(tasks).href}#${name}`;
    const scheduler = await weft(['scheduler', '--port', '0', '--no-dashboard', '--log-level', 'warn']);
    const worker = await weft(['worker', scheduler.ready['address'] as string, '--no-nanny', '--nthreads', '2', '--log-level', 'info']);
    const client = await Client.connect(scheduler.ready['address'] as string);
    try {
      expect(await client.submit(fn('value'), 1)).toBe(11);
      const started = join(dir, 'started');
      const go = join(dir, 'go');
      const running = client.submit(fn('slow'), started, go);
      await waitFor(() => existsSync(started), 10_000, 'the slow task to start');
      writeFileSync(helper, 'export const base: number = 20;\n');
      // The worker hears of the edit from its file watcher: a task submitted after that runs the new code.
      let n = 2;
      await waitFor(
        async () => {
          const k = n++;
          return (await client.submit(fn('value'), k)) === 20 + k;
        },
        10_000,
        'a task on the new code',
      );
      writeFileSync(go, '');
      expect(await running).toBe(10);
      // Both threads run the module now: the one that had imported the old code imports it anew, and the log says so.
      const ks = Array.from({ length: 8 }, (_, i) => 100 + i);
      expect(await client.gather(client.map(fn('value'), ks))).toEqual(ks.map((k) => 20 + k));
      // Its log (a pipe of its own, read apart from the results) says so, once for both threads.
      const said = (): { msg: string }[] => worker.logs.filter((l) => /^task module .*tasks\.ts changed \(.*helper\.ts\): what starts from now on uses the new code \(version 1\)/.test(l.msg));
      await waitFor(() => said().length > 0, 5_000, "the worker's log line");
      expect(said()).toHaveLength(1);
    } finally {
      await client.close();
    }
  }, 60_000);

  it('a queue worker runs the edited code location for the steps it takes after the edit, and says so', async () => {
    const redis = await startRedis();
    try {
      const file = join(dir, 'defs.ts');
      const src = new URL('../src/index.ts', import.meta.url).href;
      const source = (n: number): string => `import { Definitions, job, op } from '${src}';\nconst n = op({ name: 'n' }, () => ${n});\nexport default new Definitions({ jobs: [job({ name: 'edited' }, () => void n())] });\n`;
      writeFileSync(file, source(1));
      const worker = await weft(['queue-worker', '--redis', redis.url, '--code-root', dir, '--log-level', 'info']);
      const defs = await loadDefinitions(file);
      const exec = queueExecutor.configured({ redis: redis.url }) as ExecutorDefinition;
      const runOnce = async (): Promise<unknown> => {
        const r = await executeJob(defs.getJob('edited'), exec, { module: pathToFileURL(file).href, jobName: 'edited' });
        expect(r.success).toBe(true);
        return r.outputForNode('n');
      };
      expect(await runOnce()).toBe(1);
      writeFileSync(file, source(2));
      // The worker looks at the module file before each step: the first run after the edit runs the new code.
      expect(await runOnce()).toBe(2);
      await waitFor(() => worker.logs.some((l) => /^code location .*defs\.ts changed \(.*defs\.ts\): what starts from now on uses the new code/.test(l.msg)), 5_000, "the queue worker's log line");
    } finally {
      await redis.stop();
    }
  }, 60_000);
});
