/**
 * The run storage bench (issue 28's figures), each against its baseline in
 * the same run:
 *
 * - steps/s of a 1,000-step job with run storage (SQLite) and without, in
 *   process and with the multiprocess executor (a process per step, and
 *   warm step processes), in alternating blocks of runs, median of the
 *   runs; in process also
 *   with the output store (every output written to a file);
 * - `weft runs reexecute RUN --from-failure` of a 1,000-step job that failed
 *   at its last step: the steps it runs, and how long from the command to
 *   that step's start;
 * - `weft runs list --limit 50` over 100,000 stored runs.
 *
 *   npm run build && npm run bench:runs              a table
 *   npm run bench:runs -- --json                     one JSON line per measurement
 *   npm run bench:runs -- --rounds 5 --block 10 --mp-rounds 3 --runs 100000
 *   npm run bench:runs -- --only steps|reexecute|list
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { FigureTable, median } from './table.ts';
import type { ExecuteOptions } from '../src/jobs/run.ts';
import { Instance } from '../src/runs/instance.ts';
import { openSqlite } from '../src/runs/sql/sqlite.ts';
import { migrate } from '../src/runs/sql/migrations.ts';
import jobs, { wideAndChain } from './executor-jobs.ts';

const { values } = parseArgs({ options: { json: { type: 'boolean' }, rounds: { type: 'string' }, block: { type: 'string' }, 'mp-rounds': { type: 'string' }, runs: { type: 'string' }, only: { type: 'string' } } });
/** --only steps|reexecute|list: one part of the bench. */
const ONLY = values.only;
const part = (name: 'steps' | 'reexecute' | 'list'): boolean => ONLY === undefined || ONLY === name;
const ROUNDS = Number(values.rounds ?? 5);
/** Runs of a variant in a row, in a round (see alternate). */
const BLOCK = Number(values.block ?? 10);
const MP_ROUNDS = Number(values['mp-rounds'] ?? 3);
const STORED_RUNS = Number(values.runs ?? 100_000);
const BIN = new URL('../bin/weft.js', import.meta.url).pathname;
const home = mkdtempSync(join(tmpdir(), 'weft-runs-bench-'));

const table = new FigureTable(values.json === true);
const row = table.row.bind(table);

/** Steps/s of one run of `go`. */
async function stepsPerSecond(steps: number, go: () => Promise<{ success: boolean }>): Promise<number> {
  const t0 = performance.now();
  const r = await go();
  if (!r.success) throw new Error('a bench run failed');
  return steps / ((performance.now() - t0) / 1000);
}

/**
 * Alternating blocks of consecutive runs of each variant (after warm-up
 * runs of each): the median steps/s of each, leaving out each block's first
 * run. Blocks, not single runs in turn: a run with storage waits for the
 * writer thread at its end, the one moment its process is idle, and V8
 * does the garbage collection it has scheduled then. Alternated run by run,
 * the runs without storage (never idle) leave theirs to the next run with
 * storage: those look a millisecond faster than they are, and these a
 * millisecond slower (bench/README.md, run storage). In a block each pays
 * for its own, as a process that runs only one kind does; blocks in turn
 * still even out the machine's drift.
 */
async function alternate(steps: number, variants: Record<string, () => Promise<{ success: boolean }>>, rounds = ROUNDS, warmUp = true, block = BLOCK): Promise<Record<string, number>> {
  // Five runs of each first: the JIT's work, and the writer thread's start, are not what is measured.
  if (warmUp) for (let i = 0; i < 5; i++) for (const go of Object.values(variants)) await go();
  const seen: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (let i = 0; i < rounds; i++) {
    for (const [k, go] of Object.entries(variants)) {
      for (let j = 0; j < block; j++) {
        const sps = await stepsPerSecond(steps, go);
        // The first of a block may still pay for the block before it.
        if (j > 0 || block === 1) seen[k]?.push(sps);
      }
    }
  }
  return Object.fromEntries(Object.entries(seen).map(([k, xs]) => [k, median(xs)]));
}

async function storageOverhead(instance: Instance): Promise<void> {
  const steps = wideAndChain.steps.length;
  // Each comparison alternates on its own: the output store's files would still be in the writer thread's hands when the next run starts.
  const ip = await alternate(steps, {
    none: () => wideAndChain.executeInProcess(),
    storage: () => wideAndChain.executeInProcess({ instance }),
  });
  row('in_process, no storage (1,000 steps)', ip['none'] as number, 'steps/s', '(baseline)', true);
  const r1 = (ip['storage'] as number) / (ip['none'] as number);
  row('in_process, SQLite run storage', ip['storage'] as number, 'steps/s', `>= 70% of no storage (${(r1 * 100).toFixed(0)}%)`, r1 >= 0.7);
  const io = await alternate(steps, {
    none: () => wideAndChain.executeInProcess(),
    withOutputs: () => wideAndChain.executeInProcess({ instance, outputStore: instance.outputStore }),
  });
  const r2 = (io['withOutputs'] as number) / (io['none'] as number);
  row('in_process, SQLite run storage and the output store', io['withOutputs'] as number, 'steps/s', `(${(r2 * 100).toFixed(0)}% of no storage, ${Math.round(io['none'] as number)} in its rounds)`, true);

  // The multiprocess executor as it comes (a process per step): its steps cost what a process costs, so fewer rounds.
  const mp = await alternate(
    steps,
    {
      none: () => jobs.executeJob('wide_and_chain'),
      storage: () => jobs.executeJob('wide_and_chain', { instance }),
    },
    MP_ROUNDS,
    false,
    1,
  );
  row('multiprocess, no storage (1,000 steps)', mp['none'] as number, 'steps/s', '(baseline)', true);
  const r3 = (mp['storage'] as number) / (mp['none'] as number);
  row('multiprocess, SQLite run storage and the output store', mp['storage'] as number, 'steps/s', `>= 95% of no storage (${(r3 * 100).toFixed(0)}%)`, r3 >= 0.95);

  // Warm step processes: 20 times the steps/s, where storage's share shows most.
  const warm: ExecuteOptions = { runConfig: { execution: { config: { multiprocess: { mode: 'warm' } } } } };
  const mw = await alternate(steps, {
    none: () => jobs.executeJob('wide_and_chain', warm),
    storage: () => jobs.executeJob('wide_and_chain', { ...warm, instance }),
  });
  row('multiprocess warm, no storage (1,000 steps)', mw['none'] as number, 'steps/s', '(baseline)', true);
  const r4 = (mw['storage'] as number) / (mw['none'] as number);
  row('multiprocess warm, SQLite run storage and the output store', mw['storage'] as number, 'steps/s', `(${(r4 * 100).toFixed(0)}% of no storage)`, true);
}

/** Runs `weft ARGS` with the bench's WEFT_HOME; resolves with its stdout lines, each with when it was read. */
function weft(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; lines: { at: number; text: string }[]; started: number; stderr: string }> {
  const started = performance.now();
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WEFT_HOME: home, ...env } });
  const lines: { at: number; text: string }[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout }).on('line', (text) => lines.push({ at: performance.now(), text }));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, lines, started, stderr })));
}

async function reexecution(): Promise<void> {
  const flag = join(home, 'flag');
  writeFileSync(flag, 'up');
  const env = { WEFT_BENCH_FLAG: flag };
  const first = await weft(['run', new URL('./runs-jobs.mjs', import.meta.url).pathname, '--job', 'fails_last', '--json'], env);
  if (first.code !== 1) throw new Error(`the failing run should fail (exit ${first.code}): ${first.stderr}`);
  const runId = (JSON.parse(first.lines[0]?.text ?? '{}') as { runId: string }).runId;
  const waits: number[] = [];
  let ran: string[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await weft(['runs', 'reexecute', runId, '--from-failure', '--json'], env);
    const events = r.lines.map((l) => ({ at: l.at, ev: JSON.parse(l.text) as { type: string; stepKey: string | null } }));
    ran = events.filter((e) => e.ev.type === 'STEP_START').map((e) => e.ev.stepKey as string);
    const startAt = events.find((e) => e.ev.type === 'STEP_START')?.at;
    if (startAt === undefined) throw new Error(`the re-execution started no step: ${r.stderr}`);
    waits.push(startAt - r.started);
  }
  const ms = median(waits);
  row(`reexecute --from-failure of a 1,000-step run failed at its last step: runs ${ran.length} step (${ran.join(', ')})`, ms, 'ms to its start', `one step, <= 200 ms (median of 5: ${waits.map((w) => w.toFixed(0)).join(', ')})`, ran.length === 1 && ms <= 200);
}

async function listing(): Promise<void> {
  // 100,000 runs, written straight into the file: as many as a year of busy use.
  const db = await openSqlite(join(home, 'runs.db'));
  await migrate(db);
  const now = Date.now();
  const per = 5000;
  for (let i = 0; i < STORED_RUNS; i += per) {
    await db.transaction(async (tx) => {
      for (let j = i; j < Math.min(i + per, STORED_RUNS); j++) {
        const runId = `00000000-0000-4000-8000-${String(j).padStart(12, '0')}`;
        await tx.run('INSERT INTO runs (run_id, job, location, status, run_config, created_at, updated_at, started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', [runId, j % 2 ? 'daily' : 'hourly', null, j % 10 === 0 ? 'FAILURE' : 'SUCCESS', '{}', now - (STORED_RUNS - j) * 1000, now, now, now]);
        await tx.run('INSERT INTO run_tags (run_id, key, value) VALUES (?, ?, ?)', [runId, 'team', j % 3 ? 'data' : 'ml']);
      }
    });
  }
  await db.close();
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await weft(['runs', 'list', '--limit', '50', '--json']);
    if (r.code !== 0) throw new Error(`weft runs list failed: ${r.stderr}`);
    times.push(performance.now() - r.started);
  }
  const instance = await Instance.open({ home });
  const inside: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    await instance.storage.listRuns({ limit: 50 });
    inside.push(performance.now() - t0);
  }
  const filtered: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    await instance.storage.listRuns({ limit: 50, statuses: ['FAILURE'], tags: { team: 'ml' } });
    filtered.push(performance.now() - t0);
  }
  await instance.close();
  row(`weft runs list --limit 50 over ${STORED_RUNS.toLocaleString('en')} runs (the whole command)`, median(times), 'ms', `< 100 ms (median of 5: ${times.map((t) => t.toFixed(0)).join(', ')})`, median(times) < 100);
  row('  of which the query (listRuns, 50 newest)', median(inside), 'ms', '(median of 20)', true);
  row('  a filtered query (FAILURE, tag team=ml)', median(filtered), 'ms', '(median of 20)', true);
}

/**
 * A bare Node's start in the same environment, beside the two startup
 * figures: they are absolute, and what Node takes to start here moves them
 * most. NODE_EXTRA_CA_CERTS, for one, has every Node process parse that
 * bundle of certificates as it starts (418M instructions under callgrind,
 * 5x a bare start without it; about 30 ms on the development machine).
 */
async function bareNode(): Promise<void> {
  const times: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    await new Promise((resolve) => spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' }).on('close', resolve));
    times.push(performance.now() - t0);
  }
  const extra = process.env['NODE_EXTRA_CA_CERTS'];
  row(`for reference: a bare node -e 0${extra ? ` (NODE_EXTRA_CA_CERTS=${extra} is set)` : ''}`, median(times), 'ms', `(median of 7: ${times.map((t) => t.toFixed(0)).join(', ')})`, true);
}

async function main(): Promise<void> {
  if (part('steps')) {
    const instance = await Instance.open({ home: join(home, 'overhead') });
    try {
      await storageOverhead(instance);
    } finally {
      await instance.close();
    }
  }
  if (part('reexecute') || part('list')) await bareNode();
  if (part('reexecute')) await reexecution();
  if (part('list')) await listing();
  table.print();
  rmSync(home, { recursive: true, force: true });
}

await main();
