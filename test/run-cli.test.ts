import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/index.ts';
import { WEFT_BIN } from '../src/cluster/local-cluster.ts';
import { alive, waitFor } from './helpers/util.ts';

const BIN = WEFT_BIN;
const DEFS = new URL('./fixtures/jobs.ts', import.meta.url).pathname;
const CLUSTER_DEFS = new URL('./fixtures/cluster-jobs.ts', import.meta.url).pathname;
const PIPELINE = new URL('../examples/pipeline.ts', import.meta.url).pathname;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function weft(args: string[], onLine?: (line: string, kill: (sig: NodeJS.Signals) => void) => void): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    createInterface({ input: child.stdout }).on('line', (line) => {
      stdout += `${line}\n`;
      onLine?.(line, (sig) => child.kill(sig));
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('weft run and weft list', () => {
  it('runs a job with its executor: one JSON event per line with --json, exit 0', async () => {
    const r = await weft(['run', DEFS, '--job', 'simple', '--json']);
    expect(r.code).toBe(0);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; stepKey: string | null; pid?: number });
    expect(events[0]?.type).toBe('RUN_START');
    expect(events.at(-1)?.type).toBe('RUN_SUCCESS');
    expect(events.filter((e) => e.type === 'STEP_SUCCESS')).toHaveLength(5);
  });

  it('sends what steps print to stderr, keeping --json output clean', async () => {
    const r = await weft(['run', DEFS, '--job', 'chatty', '--json']);
    expect(r.code).toBe(0);
    for (const line of r.stdout.trim().split('\n')) expect(() => JSON.parse(line) as unknown).not.toThrow();
    expect(r.stderr).toContain('hello from a step process');
  });

  it('prints one line per event without a terminal and exits 1 when the run fails', async () => {
    const r = await weft(['run', DEFS, '--job', 'failing', '--config', '/dev/null']);
    expect(r.code).toBe(2); // /dev/null is not JSON
    expect(r.stderr).toContain('--config');
    const f = await weft(['run', DEFS, '--job', 'failing']);
    expect(f.code).toBe(1);
    expect(f.stdout).toMatch(/STEP_FAILURE boom step boom failed: TypeError: boom went the op/);
    expect(f.stdout).toMatch(/RUN_FAILURE .*steps not run: add_one/);
  });

  it('shows live step counts on a terminal', async () => {
    // `script` (util-linux, part of every Debian install) gives the command a pseudo-terminal.
    const out = await new Promise<string>((resolve) => {
      const child = spawn('script', ['-qfec', `${process.execPath} ${BIN} run ${DEFS} --job simple`, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.on('close', () => resolve(text));
    });
    const lines = out.split('\r').map((l) => l.replaceAll('\u001b[2K', '').trim());
    expect(lines).toContain('steps: 5/5 done, 0 running, 0 failed');
    expect(lines.some((l) => /^steps: [0-4]\/5 done, [12] running \(/.test(l))).toBe(true);
    expect(out).toMatch(/RUN_SUCCESS run .* of job simple succeeded/);
  });

  it('refuses an unknown job with the list of jobs (exit 2)', async () => {
    const r = await weft(['run', DEFS, '--job', 'nope']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('has no job nope (jobs: function_output, chatty, simple, failing');
  });

  it('Ctrl-C cancels the run: step processes are stopped, exit 130', async () => {
    const pids: number[] = [];
    const r = await weft(['run', DEFS, '--job', 'sleepy', '--json'], (line, kill) => {
      const ev = JSON.parse(line) as { type: string; pid?: number };
      if (ev.type === 'STEP_START' && ev.pid) pids.push(ev.pid);
      if (pids.length === 2 && ev.type === 'STEP_START') kill('SIGINT');
    });
    expect(r.code).toBe(130);
    expect(r.stdout).toContain('RUN_CANCELED');
    expect(pids).toHaveLength(2);
    await waitFor(() => pids.every((p) => !alive(p)), 5000, 'step processes to exit');
  });

  it('kill -9 of weft run leaves no step process behind', async () => {
    const pids: number[] = [];
    let runPid = 0;
    const r = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'run', DEFS, '--job', 'sleepy', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
      runPid = child.pid ?? 0;
      createInterface({ input: child.stdout }).on('line', (line) => {
        const ev = JSON.parse(line) as { type: string; pid?: number };
        if (ev.type === 'STEP_START' && ev.pid) pids.push(ev.pid);
        if (pids.length === 2 && ev.type === 'STEP_START') child.kill('SIGKILL');
      });
      child.on('close', (_code, signal) => resolve(signal === 'SIGKILL' ? 137 : _code));
    });
    expect(r).toBe(137);
    expect(alive(runPid)).toBe(false);
    expect(pids).toHaveLength(2);
    // Step processes leave when their IPC channel to the dead parent closes.
    await waitFor(() => pids.every((p) => !alive(p)), 5000, 'orphaned step processes to exit');
  });

  it('lists jobs with their executors, and assets', async () => {
    const r = await weft(['list', DEFS, '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { jobs: { name: string; executor: string }[]; assets: { name: string; deps: string[] }[] };
    expect(out.jobs.find((j) => j.name === 'pids')?.executor).toBe('multiprocess');
    expect(out.jobs.find((j) => j.name === 'simple')?.executor).toBe('multi_or_in_process');
    expect(out.assets).toContainEqual({ name: 'report', deps: ['sorted', 'raw'] });
  });
});

describe('weft run --address: a job on a running cluster', () => {
  it('runs the README pipeline on the cluster and Ctrl-C cancels a run there (exit 130)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-cli-cluster-'));
    const cluster = await LocalCluster.start({ workers: 2 });
    try {
      const config = join(dir, 'small.json');
      writeFileSync(config, JSON.stringify({ ops: { generate: { config: { rowsPerPartition: 2000 } } } }));
      const r = await weft(['run', PIPELINE, '--job', 'sales_report', '--address', cluster.address, '--config', config, '--json']);
      expect(r.code).toBe(0);
      const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; stepKey: string | null; pid?: number; message: string });
      expect(events.at(-1)?.type).toBe('RUN_SUCCESS');
      expect(events.filter((e) => e.type === 'STEP_SUCCESS')).toHaveLength(34);
      const workerPids = cluster.workers.map((w) => w.pid);
      for (const e of events.filter((x) => x.type === 'STEP_START')) expect(workerPids).toContain(e.pid);
      expect(events.some((e) => e.type === 'LOG' && /^Sales report: 16 partitions, 31,856 rows \(144 bad rows dropped\)/.test(e.message))).toBe(true);

      const flag = join(dir, 'flag');
      writeFileSync(join(dir, 'cancel.json'), JSON.stringify({ ops: { watches_cancel: { config: { file: flag } } } }));
      const c = await weft(['run', CLUSTER_DEFS, '--job', 'cancellable', '--address', cluster.address, '--config', join(dir, 'cancel.json'), '--json'], (line, kill) => {
        if ((JSON.parse(line) as { type: string }).type === 'LOG') kill('SIGINT');
      });
      expect(c.code).toBe(130);
      expect(c.stdout).toContain('RUN_CANCELED');
      // The step on the worker saw its signal abort (it writes the file then).
      await waitFor(() => existsSync(flag), 10_000, 'the step on the cluster to see the cancellation');
      const bad = await weft(['run', PIPELINE, '--job', 'sales_report', '--address', 'localhost:1']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('--address must be a scheduler address like ws://127.0.0.1:8786');
    } finally {
      await cluster.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
