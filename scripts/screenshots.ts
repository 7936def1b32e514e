/**
 * The dashboard screenshots of docs/operations.md: a LocalCluster running a tree of
 * tasks (and a job on the cluster executor), photographed by Chromium.
 *
 *   node --import tsx scripts/screenshots.ts [out-dir]   (default docs/images)
 */
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { clusterExecutor, LocalCluster, ref, type TaskDef } from '../src/index.ts';
import { executeJob } from '../src/jobs/run.ts';
import jobs from '../test/fixtures/jobs.ts';

const out = process.argv[2] ?? 'docs/images';
const TASKS = new URL('../test/fixtures/tasks.ts', import.meta.url).href;
const fn = (name: string): string => `${TASKS}#${name}`;

const cluster = await LocalCluster.start({ workers: 2, threadsPerWorker: 2 });
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(`${cluster.dashboardUrl}/status`);
  const client = await cluster.client();
  // A tree: 256 leaves of 20-60 ms, summed in pairs, and a few that fail.
  const g = new Map<string, TaskDef>();
  for (let i = 0; i < 256; i++) g.set(`leaf-${i}`, { fn: fn('busy'), args: [20 + (i % 5) * 10] });
  let width = 256;
  let level = 0;
  while (width > 1) {
    for (let j = 0; j < width; j += 2) g.set(`sum${level + 1}-${j / 2}`, { fn: fn('add'), args: [ref(level === 0 ? `leaf-${j}` : `sum${level}-${j}`), ref(level === 0 ? `leaf-${j + 1}` : `sum${level}-${j + 1}`)] });
    width /= 2;
    level++;
  }
  for (let i = 0; i < 4; i++) g.set(`oops-${i}`, { fn: fn('fail'), args: ['on purpose'] });
  const futures = await client.compute(g, { keys: [`sum${level}-0`, 'oops-0', 'oops-1', 'oops-2', 'oops-3'] });
  await new Promise((r) => setTimeout(r, 2500));
  await page.screenshot({ path: join(out, 'dashboard-status.png') });
  await Promise.allSettled(Object.values(futures).map((f) => f.done()));
  await page.goto(`${cluster.dashboardUrl}/tasks`);
  await page.locator('.task-row').first().waitFor();
  await page.screenshot({ path: join(out, 'dashboard-tasks.png') });
  const job = jobs.getJob('branching');
  await executeJob(job, clusterExecutor.configured({ cluster: { existing: { address: cluster.address } } }), { module: jobs.location as string, jobName: 'branching' });
  await page.goto(`${cluster.dashboardUrl}/runs`);
  await page.locator('.step-row').first().waitFor();
  await page.screenshot({ path: join(out, 'dashboard-runs.png') });
  await client.close();
} finally {
  await browser.close();
  await cluster.close();
}
