/**
 * The scheduler's HTTP port with real processes: /health, Prometheus
 * /metrics and /api/v1/workers on a LocalCluster, and the token rule on a
 * scheduler started with a token.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import type { TaskDef } from '../src/index.ts';
import { WEFT_BIN } from '../src/cluster/local-cluster.ts';
import { fn, withCluster } from './helpers/util.ts';

/** The value of a Prometheus sample line `name{labels} value`, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("the scheduler's HTTP port", () => {
  it('serves /health, Prometheus /metrics that follow the work, and the workers as JSON', async () => {
    await withCluster({ workers: 2, logLevel: 'warn' }, async (cluster, client) => {
      const base = cluster.dashboardUrl;
      expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const health = await fetch(`${base}/health`);
      expect(health.status).toBe(200);
      const g = new Map<string, TaskDef>();
      for (let i = 0; i < 50; i++) g.set(`m-${i}`, { fn: fn('inc'), args: [i] });
      g.set('m-bad', { fn: fn('fail'), args: ['on purpose'] });
      await client.get(g, [...g.keys()].filter((k) => k !== 'm-bad'));
      await client.compute(new Map([['m-bad', g.get('m-bad') as TaskDef]])).then((fs) => Object.values(fs)[0]?.done().catch(() => {}));
      const res = await fetch(`${base}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      const text = await res.text();
      expect(sample(text, 'weft_workers')).toBe(2);
      expect(sample(text, 'weft_threads')).toBe(2);
      expect(sample(text, 'weft_tasks_finished_total{group="inc"}')).toBeGreaterThanOrEqual(50);
      expect(sample(text, 'weft_tasks_erred_total{group="fail"}')).toBe(1);
      expect(sample(text, 'weft_graph_ingest_seconds_count')).toBeGreaterThanOrEqual(2);
      expect(sample(text, 'weft_graph_tasks_received_total')).toBeGreaterThanOrEqual(51);
      expect(sample(text, 'weft_messages_received_total{from="worker"}')).toBeGreaterThan(0);
      expect(text).toMatch(/^weft_worker_memory_bytes\{worker="local-0"\} \d+/m);
      expect(text).toMatch(/^weft_event_loop_lag_seconds\{quantile="0\.99"\} /m);
      const workers = (await (await fetch(`${base}/api/v1/workers`)).json()) as { name: string; nthreads: number }[];
      expect(workers.map((w) => w.name).sort()).toEqual(['local-0', 'local-1']);
      expect((await fetch(`${base}/nowhere`)).status).toBe(404);
    });
  }, 60_000);

  it('with a token: /metrics and the API want it (bearer or cookie); /health does not', async () => {
    const proc = spawn(process.execPath, [WEFT_BIN, 'scheduler', '--port', '0', '--dashboard-port', '0', '--token', 'sesame', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
      let ready: { dashboard?: string } = {};
      for await (const line of lines) {
        if (line.startsWith('{')) {
          ready = JSON.parse(line) as { dashboard?: string };
          break;
        }
      }
      const base = ready.dashboard;
      expect(base).toBeDefined();
      expect((await fetch(`${base}/health`)).status).toBe(200);
      const refused = await fetch(`${base}/metrics`);
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate')).toBe('Bearer');
      expect((await fetch(`${base}/metrics`, { headers: { Authorization: 'Bearer wrong' } })).status).toBe(401);
      expect((await fetch(`${base}/metrics`, { headers: { Authorization: 'Bearer sesame' } })).status).toBe(200);
      // The token is no cookie: the login form starts a session of its own (test/dashboard.test.ts).
      expect((await fetch(`${base}/api/v1/workers`, { headers: { Cookie: 'weft_token=sesame' } })).status).toBe(401);
    } finally {
      const exited = once(proc, 'exit');
      proc.kill('SIGTERM');
      await exited;
    }
  }, 30_000);
});
