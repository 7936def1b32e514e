/**
 * The executors bench: steps/s of the in-process executor on a 1,000-step
 * job, and of the multiprocess executor on 40 steps in isolated and warm
 * modes, next to the rate at which this machine forks bare Node processes.
 *
 *   npm run bench:executors            a table
 *   npm run bench:executors -- --json  one JSON line per measurement
 *   npm run bench:executors -- --check exit 1 if a target is missed
 */
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import defs, { wideAndChain } from './executor-jobs.ts';

interface Row {
  system: 'weft';
  bench: string;
  steps: number;
  seconds: number;
  steps_per_s: number;
  target: string;
  met: boolean;
}

/** Bare `node` processes forked and answering over IPC, `n` of them, as many at once as CPUs. */
async function bareForkRate(n: number): Promise<number> {
  const code = "process.send('ready', () => process.exit(0))";
  const t0 = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      await new Promise<void>((resolve, reject) => {
        const c = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
        let answered = false;
        c.once('message', () => (answered = true));
        c.once('exit', () => (answered ? resolve() : reject(new Error('a bare node process exited without answering'))));
        c.once('error', reject);
      });
    }
  };
  await Promise.all(Array.from({ length: availableParallelism() }, worker));
  return n / ((performance.now() - t0) / 1000);
}

async function timedRun(name: string, mode: 'isolated' | 'warm' | null): Promise<{ seconds: number; steps: number }> {
  const t0 = performance.now();
  const r = mode === null ? await defs.getJob(name).executeInProcess() : await defs.executeJob(name, { runConfig: { execution: { config: { multiprocess: { mode } } } } });
  const seconds = (performance.now() - t0) / 1000;
  if (!r.success) throw new Error(`bench run of ${name} failed: ${r.allEvents.at(-1)?.message}`);
  return { seconds, steps: defs.getJob(name).steps.length };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { json: { type: 'boolean' }, check: { type: 'boolean' } } });
  const rows: Row[] = [];
  const row = (bench: string, steps: number, seconds: number, target: string, met: boolean): void => {
    const r: Row = { system: 'weft', bench, steps, seconds: Math.round(seconds * 10000) / 10000, steps_per_s: Math.round((steps / seconds) * 10) / 10, target, met };
    rows.push(r);
    if (values.json) console.log(JSON.stringify(r));
  };

  // In-process: a warm-up run, then the median of five.
  await wideAndChain.executeInProcess();
  const runs = [];
  for (let i = 0; i < 5; i++) runs.push(await timedRun('wide_and_chain', null));
  runs.sort((a, b) => a.seconds - b.seconds);
  const ip = runs[2] as { seconds: number; steps: number };
  const perStep = (ip.seconds / ip.steps) * 1e6;
  row('in_process (1,000 steps, median of 5)', ip.steps, ip.seconds, `<= 50 us/step (${perStep.toFixed(1)} us)`, perStep <= 50);

  const bare = await bareForkRate(40);
  row('bare node fork', 40, 40 / bare, '(reference)', true);
  const iso = await timedRun('forty', 'isolated');
  row('multiprocess isolated (40 steps)', iso.steps, iso.seconds, `>= 80% of bare fork (${((iso.steps / iso.seconds / bare) * 100).toFixed(0)}%)`, iso.steps / iso.seconds >= 0.8 * bare);
  const first = await timedRun('forty', 'warm');
  row('multiprocess warm, first run (40 steps)', first.steps, first.seconds, '(starts its processes)', true);
  const warm = await timedRun('forty', 'warm');
  row('multiprocess warm (40 steps)', warm.steps, warm.seconds, '>= 1,000 steps/s', warm.steps / warm.seconds >= 1000);

  if (!values.json) {
    console.log('\nweft executors bench\n');
    console.log('bench                                      steps   seconds   steps/s  target');
    for (const r of rows) console.log(`${r.bench.padEnd(41)} ${String(r.steps).padStart(6)} ${r.seconds.toFixed(3).padStart(9)} ${String(r.steps_per_s).padStart(9)}  ${r.target}${r.met ? '' : '  MISSED'}`);
  }
  if (values.check && rows.some((r) => !r.met)) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
