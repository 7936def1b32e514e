/**
 * The runs commands against real processes: `weft run` records its run,
 * `weft runs` lists, shows, follows, re-executes and deletes it; a launcher
 * killed with -9 leaves a run the monitor fails with the reason, and that
 * re-execution from failure completes; the daemon starts queued runs under
 * the queue's limits, a canceled queued run never starts, and stopping the
 * daemon leaves no process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { WEFT_BIN } from '../src/cluster/local-cluster.ts';
import { alive, waitFor } from './helpers/util.ts';

const DEFS = new URL('./fixtures/step-jobs.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'weft-runs-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function home(name: string, yaml = ''): string {
  const h = join(dir, name);
  mkdirSync(h, { recursive: true });
  if (yaml) writeFileSync(join(h, 'weft.yaml'), yaml);
  return h;
}

function start(weftHome: string, args: string[], onLine?: (line: string, child: ChildProcess) => void): { child: ChildProcess; done: Promise<Ran> } {
  const child = spawn(process.execPath, [WEFT_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WEFT_HOME: weftHome } });
  let stdout = '';
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    stdout += `${line}\n`;
    onLine?.(line, child);
  });
  const done = new Promise<Ran>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  return { child, done };
}

const weft = (weftHome: string, args: string[]): Promise<Ran> => start(weftHome, args).done;

interface JsonRun {
  runId: string;
  job: string;
  status: string;
  tags: Record<string, string>;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  parentRunId: string | null;
}

async function runsJson(weftHome: string, extra: string[] = []): Promise<JsonRun[]> {
  const r = await weft(weftHome, ['runs', 'list', '--json', ...extra]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as JsonRun[];
}

describe('weft runs', () => {
  it('weft run records the run; list, show, logs, reexecute --from-failure and delete work on it', async () => {
    const h = home('basic');
    const flag = join(dir, 'basic-flag');
    writeFileSync(flag, 'up');
    const config = join(dir, 'basic.json');
    writeFileSync(config, JSON.stringify({ ops: { gate: { config: { flag } } } }));
    const first = await weft(h, ['run', DEFS, '--job', 'mend', '--config', config, '--tag', 'team=data', '--json']);
    expect(first.code).toBe(1);

    const listed = await runsJson(h);
    expect(listed).toHaveLength(1);
    const run = listed[0] as JsonRun;
    expect(run).toMatchObject({ job: 'mend', status: 'FAILURE', tags: { team: 'data' } });
    expect(Date.parse(run.createdAt)).toBeGreaterThan(0);
    expect((await runsJson(h, ['--status', 'success'])).length).toBe(0);
    expect((await runsJson(h, ['--tag', 'team=data', '--job', 'mend'])).length).toBe(1);

    const show = await weft(h, ['runs', 'show', run.runId.slice(0, 8)]);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/status\s+FAILURE/);
    expect(show.stdout).toMatch(/gate\s+failed\s+1/);
    expect(show.stdout).toMatch(/report\s+not-run\s+0/);

    const logs = await weft(h, ['runs', 'logs', run.runId, '--json']);
    const types = logs.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { type: string }).type);
    expect(types[0]).toBe('RUN_STARTING');
    expect(types.at(-1)).toBe('RUN_FAILURE');
    expect(types).toContain('STEP_FAILURE');

    rmSync(flag);
    const again = await weft(h, ['runs', 'reexecute', run.runId, '--from-failure', '--json']);
    expect(again.code, again.stderr).toBe(0);
    const evs = again.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; stepKey: string | null });
    expect(evs.filter((e) => e.type === 'STEP_START').map((e) => e.stepKey)).toEqual(['gate', 'report']);
    const after = await runsJson(h);
    expect(after.map((r) => r.status)).toEqual(['SUCCESS', 'FAILURE']);
    expect(after[0]?.parentRunId).toBe(run.runId);
    expect(after[0]?.tags['team']).toBe('data');

    const bad = await weft(h, ['runs', 'reexecute', run.runId, '--steps', 'nope*']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/"nope\*" names no step of job mend/);
    const unknown = await weft(h, ['runs', 'show', 'ffffffff-0000']);
    expect(unknown.stderr).toMatch(/no run ffffffff-0000 in run storage/);

    const del = await weft(h, ['runs', 'delete', run.runId]);
    expect(del.code, del.stderr).toBe(0);
    expect(existsSync(join(h, 'storage', run.runId))).toBe(false);
    expect((await runsJson(h)).map((r) => r.runId)).not.toContain(run.runId);
  }, 120_000);

  it('a launcher killed with -9: the run monitor fails its run with the reason, and re-execution from failure completes it', async () => {
    const h = home('killed', 'runMonitor:\n  heartbeatInterval: 200ms\n  heartbeatTimeout: 1s\n');
    const flag = join(dir, 'held-flag');
    writeFileSync(flag, 'up');
    const config = join(dir, 'held.json');
    writeFileSync(config, JSON.stringify({ ops: { hold: { config: { flag } } } }));
    let stepPid: number | undefined;
    const launcher = start(h, ['run', DEFS, '--job', 'held', '--config', config, '--json'], (line, child) => {
      const ev = JSON.parse(line) as { type: string; stepKey: string | null; pid?: number };
      if (ev.type === 'STEP_START' && ev.stepKey === 'hold') {
        stepPid = ev.pid;
        // Once its events are written (batches go out within 20 ms): the step then shows as interrupted, not as never run.
        setTimeout(() => child.kill('SIGKILL'), 300);
      }
    });
    const ended = await launcher.done;
    expect(ended.code).toBeNull();
    // Its step processes go with it (they watch their launcher).
    if (stepPid !== undefined) await waitFor(() => !alive(stepPid as number), 10_000, 'the step process to exit');

    await waitFor(async () => (await runsJson(h))[0]?.status === 'FAILURE', 15_000, 'the run monitor to fail the run');
    const show = await weft(h, ['runs', 'show', (await runsJson(h))[0]?.runId as string]);
    expect(show.stdout).toMatch(/wrote no heartbeat for \d/);
    expect(show.stdout).toMatch(/hold\s+interrupted/);

    // logs --follow prints the re-execution's events as they come, and stops when it ends.
    const runId = (await runsJson(h))[0]?.runId as string;
    let following: ReturnType<typeof start> | null = null;
    const again = await new Promise<Ran>((resolve) => {
      const re = start(h, ['runs', 'reexecute', runId, '--from-failure', '--json'], (line) => {
        const ev = JSON.parse(line) as { type: string; stepKey: string | null; runId: string };
        if (ev.type === 'STEP_START' && ev.stepKey === 'hold' && !following) {
          following = start(h, ['runs', 'logs', ev.runId, '--follow', '--json']);
          setTimeout(() => rmSync(flag), 500);
        }
      });
      void re.done.then(resolve);
    });
    const follow = await (following as unknown as ReturnType<typeof start>).done;
    expect(follow.code, follow.stderr).toBe(0);
    const followedTypes = follow.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { type: string }).type);
    expect(followedTypes[0]).toBe('RUN_STARTING');
    expect(followedTypes.at(-1)).toBe('RUN_SUCCESS');
    expect(followedTypes).toContain('STEP_SUCCESS');
    expect(again.code, again.stderr).toBe(0);
    const evs = again.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; stepKey: string | null });
    expect(evs.filter((e) => e.type === 'STEP_START').map((e) => e.stepKey)).toEqual(['hold', 'report']);
    expect((await runsJson(h))[0]?.status).toBe('SUCCESS');
  }, 120_000);


  it('a reader that goes away (| head): weft run stops printing and its run still ends SUCCESS; logs --follow ends; neither crashes with EPIPE', async () => {
    const h = home('closed-stdout');
    const flag = join(dir, 'closed-stdout-flag');
    writeFileSync(flag, 'up');
    const config = join(dir, 'closed-stdout.json');
    writeFileSync(config, JSON.stringify({ ops: { hold: { config: { flag } } } }));
    let following: ReturnType<typeof start> | null = null;
    const launcher = start(h, ['run', DEFS, '--job', 'held', '--config', config, '--json'], (line, child) => {
      const ev = JSON.parse(line) as { type: string; stepKey: string | null; runId: string };
      if (ev.type !== 'STEP_START' || ev.stepKey !== 'hold' || following) return;
      following = start(h, ['runs', 'logs', ev.runId, '--follow', '--json'], (_line, f) => f.stdout?.destroy());
      // Both readers gone while the step holds: every later event meets a closed pipe.
      child.stdout?.destroy();
      setTimeout(() => rmSync(flag), 500);
    });
    try {
      const ran = await launcher.done;
      expect(ran.code, ran.stderr).toBe(0);
      expect(ran.stderr).not.toMatch(/EPIPE/);
      expect((await runsJson(h))[0]?.status).toBe('SUCCESS');
      const follow = await (following as unknown as ReturnType<typeof start>).done;
      expect(follow.code, follow.stderr).toBe(0);
      expect(follow.stderr).not.toMatch(/EPIPE/);
    } finally {
      // A follower of a run that never ends (a launcher that crashed) would follow forever.
      (following as ReturnType<typeof start> | null)?.child.kill('SIGKILL');
    }
  }, 60_000);
  it('the daemon starts queued runs one at a time (maxConcurrentRuns 1), higher priority first; a canceled one never starts; stopping it leaves no process', async () => {
    const h = home('queue', 'runQueue:\n  maxConcurrentRuns: 1\n  dequeueInterval: 100ms\n');
    const config = join(dir, 'queue.json');
    writeFileSync(config, JSON.stringify({ ops: { gate: { config: { flag: join(dir, 'no-flag') } } } }));
    const submit = async (tags: string[]): Promise<string> => {
      const r = await weft(h, ['runs', 'submit', DEFS, '--job', 'mend', '--config', config, '--json', ...tags.flatMap((t) => ['--tag', t])]);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as JsonRun).runId;
    };
    const low = await submit(['n=1']);
    const canceled = await submit(['n=2']);
    const high = await submit(['n=3', 'weft/run-priority=5']);
    expect((await runsJson(h)).every((r) => r.status === 'QUEUED')).toBe(true);
    const c = await weft(h, ['runs', 'cancel', canceled]);
    expect(c.stdout).toMatch(/was queued: canceled/);

    const bad = await weft(h, ['runs', 'submit', DEFS, '--job', 'mend']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/ops\.gate\.config/);

    const daemon = start(h, ['daemon', '--log-level', 'warn']);
    await waitFor(async () => (await runsJson(h)).filter((r) => r.status === 'SUCCESS').length === 2, 60_000, 'both runs to finish');
    const runs = await runsJson(h);
    const byId = new Map(runs.map((r) => [r.runId, r]));
    expect(byId.get(canceled)?.status).toBe('CANCELED');
    const hi = byId.get(high) as JsonRun;
    const lo = byId.get(low) as JsonRun;
    // One at a time, the higher priority first.
    expect(Date.parse(hi.endedAt as string)).toBeLessThanOrEqual(Date.parse(lo.startedAt as string));

    daemon.child.kill('SIGTERM');
    const stopped = await daemon.done;
    expect(stopped.code).toBe(0);
  }, 120_000);
});
