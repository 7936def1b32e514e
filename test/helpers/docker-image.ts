/**
 * The test image for the docker executor, built offline (no registry here):
 * this machine's `node` binary and the shared libraries it needs, `env` (for
 * the `#!/usr/bin/env node` of weft's bin), and `weft` on the PATH as a
 * global install gives it: a link to this checkout's bin/weft.js, which the
 * tests mount into the container at the same path (read-only). `docker
 * import` of that takes about 2 s, once per checkout and Node version.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { expect } from 'vitest';
import type { JobExecutionResult, RunEvent } from '../../src/index.ts';

export const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');

/** Shared libraries a binary loads, as ldd lists them. */
function libraries(binary: string): string[] {
  const out = execFileSync('ldd', [binary], { encoding: 'utf8' });
  return [...out.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1] as string);
}

/** Builds the image unless it exists; returns its name. */
export function testImage(): string {
  const node = process.execPath;
  const env = execFileSync('sh', ['-c', 'command -v env'], { encoding: 'utf8' }).trim();
  const tag = createHash('sha1').update(`${process.version}\n${node}\n${ROOT}`).digest('hex').slice(0, 12);
  const image = `weft-test-node:${tag}`;
  try {
    execFileSync('docker', ['image', 'inspect', image], { stdio: 'ignore' });
    return image;
  } catch {
    // not built yet
  }
  const stage = mkdtempSync(join(tmpdir(), 'weft-image-'));
  try {
    for (const f of new Set([node, env, ...libraries(node), ...libraries(env)])) {
      mkdirSync(join(stage, dirname(f)), { recursive: true });
      copyFileSync(f, join(stage, f));
      chmodSync(join(stage, f), 0o755);
    }
    mkdirSync(join(stage, 'usr/local/bin'), { recursive: true });
    symlinkSync(join(ROOT, 'bin/weft.js'), join(stage, 'usr/local/bin/weft'));
    mkdirSync(join(stage, 'tmp'));
    chmodSync(join(stage, 'tmp'), 0o1777);
    execFileSync('sh', ['-c', `tar -C '${stage}' -c . | docker import --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' - '${image}'`], { stdio: ['ignore', 'ignore', 'inherit'] });
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  return image;
}

/** Containers carrying a label (`weft.run=ID`), running or not. */
export function containersLabelled(label: string): string[] {
  return execFileSync('docker', ['ps', '-aq', '--filter', `label=${label}`], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

/** Where a step ran, as the step fixtures' `whereAmI` says it: its container's id, if any. */
export type Where = { container: string | null };

/**
 * The `killable` job's scenario, for any executor that runs steps in
 * containers: its step's container is killed (`docker kill`) once the step
 * logs; the run must succeed on the retry, report the kill, and leave no
 * container. `run` runs the job with the given event handler.
 */
export async function expectKilledContainerRetried(run: (onEvent: (ev: RunEvent) => void) => Promise<JobExecutionResult>): Promise<void> {
  const r = await run((ev) => {
    const where = ev.data?.['where'] as Where | undefined;
    if (ev.type === 'LOG' && where?.container) execFileSync('docker', ['kill', where.container], { stdio: 'ignore' });
  });
  expect(r.success).toBe(true);
  const retry = r.eventsForNode('killable').find((e) => e.type === 'STEP_UP_FOR_RETRY');
  expect(retry?.error?.message).toMatch(/exited with code 137 \(killed by SIGKILL\)/);
  expect((r.outputForNode('killable') as { attempt: number }).attempt).toBe(1);
  expect(containersLabelled(`weft.run=${r.runId}`)).toEqual([]);
}

/** The `chain3` job's result, for any executor that runs steps in containers: each step ran in a container of its own, and none is left. */
export function expectChainInOwnContainers(r: JobExecutionResult): void {
  expect(r.success).toBe(true);
  type Ident = { where: Where; prev: Ident[] };
  const last = r.outputForNode('ident_3') as Ident;
  const ids = [last.prev[0]?.prev[0]?.where.container, last.prev[0]?.where.container, last.where.container];
  for (const id of ids) expect(id).toMatch(/^[0-9a-f]{64}$/);
  expect(new Set(ids).size).toBe(3);
  expect(containersLabelled(`weft.run=${r.runId}`)).toEqual([]);
}
