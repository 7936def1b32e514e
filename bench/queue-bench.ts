/**
 * The queue executor bench: 1,000 trivial steps (a fan-out and a fan-in)
 * through two `weft queue-worker` processes on one Redis (Debian's
 * redis-server, started here on a free loopback port): steps/s; and the
 * median time from a step being ready (the step before it ended) to it
 * starting on a worker, over a 100-step chain, where no step waits behind
 * another.
 *
 *   npm run bench:queue             a table
 *   npm run bench:queue -- --json   one JSON line per measurement
 *   npm run bench:queue -- --check  exit 1 if a target is missed
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { loadDefinitions, queueExecutor, type ExecutorDefinition, type RunEvent } from '../src/index.ts';
import { executeJob } from '../src/jobs/run.ts';
import { WEFT_BIN } from '../src/cluster/local-cluster.ts';
import { startRedis } from '../test/helpers/redis.ts';

const MODULE = new URL('./queue-jobs.mjs', import.meta.url).href;

async function startWorker(redis: string): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [WEFT_BIN, 'queue-worker', '--redis', redis, '--concurrency', '50'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, WEFT_LOG_LEVEL: 'warn' } });
  for await (const line of createInterface({ input: proc.stdout as NodeJS.ReadableStream })) if (line.startsWith('{')) break;
  return proc;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { json: { type: 'boolean' }, check: { type: 'boolean' }, runs: { type: 'string' } } });
  const runs = Number(values.runs ?? 3);
  const redis = await startRedis();
  const workers = await Promise.all([startWorker(redis.url), startWorker(redis.url)]);
  try {
    const defs = await loadDefinitions(MODULE);
    const exec = queueExecutor.configured({ redis: redis.url }) as ExecutorDefinition;
    const go = async (name: string): Promise<{ seconds: number; events: RunEvent[] }> => {
      const t0 = performance.now();
      const r = await executeJob(defs.getJob(name), exec, { module: MODULE, jobName: name });
      if (!r.success) throw new Error(`bench run of ${name} failed: ${r.allEvents.at(-1)?.message}`);
      return { seconds: (performance.now() - t0) / 1000, events: [...r.allEvents] };
    };
    await go('chain'); // warm-up: the workers import the code location
    const rates: number[] = [];
    const waits: number[] = [];
    for (let i = 0; i < runs; i++) {
      const f = await go('fan_out_in');
      rates.push(1000 / f.seconds);
      const c = await go('chain');
      // Ready: the step before it succeeded; started: its STEP_START (both stamped on this machine's clock).
      const ended = new Map<string, number>();
      let prev: string | null = null;
      for (const ev of c.events) {
        if (ev.stepKey === null) continue;
        if (ev.type === 'STEP_START' && prev !== null) waits.push(ev.timestamp - (ended.get(prev) ?? ev.timestamp));
        if (ev.type === 'STEP_SUCCESS') {
          ended.set(ev.stepKey, ev.timestamp);
          prev = ev.stepKey;
        }
      }
    }
    const rate = median(rates);
    const wait = median(waits);
    const rows = [
      { bench: 'fan-out and fan-in (1,000 steps, 2 workers), median of runs', value: Math.round(rate), unit: 'steps/s', target: '>= 1,000', met: rate >= 1000 },
      { bench: 'ready to start (100-step chain), median', value: Math.round(wait * 10) / 10, unit: 'ms', target: '<= 5', met: wait <= 5 },
    ];
    for (const r of rows) if (values.json) console.log(JSON.stringify(r));
    if (!values.json) {
      console.log('\nweft queue executor bench (BullMQ on Redis, 2 queue workers)\n');
      for (const r of rows) console.log(`${r.bench.padEnd(62)} ${String(r.value).padStart(8)} ${r.unit.padEnd(8)} target ${r.target}${r.met ? '' : '  MISSED'}`);
      console.log(`(runs: ${rates.map((x) => Math.round(x)).join(', ')} steps/s)`);
    }
    if (values.check && rows.some((r) => !r.met)) process.exitCode = 1;
  } finally {
    for (const w of workers) {
      const exited = once(w, 'exit');
      w.kill('SIGTERM');
      await exited;
    }
    await redis.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
