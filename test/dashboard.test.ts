/**
 * The dashboard in a real browser: Debian's Chromium driven by
 * playwright-core, against real clusters over loopback (`.ci/run` installs
 * chromium).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { clusterExecutor, LocalCluster } from '../src/index.ts';
import type { TaskDef } from '../src/client/graph.ts';
import { executeJob } from '../src/jobs/run.ts';
import jobs from './fixtures/jobs.ts';

const TASKS = new URL('./fixtures/tasks.ts', import.meta.url).href;
const fn = (name: string): string => `${TASKS}#${name}`;

let browser: Browser;
let cluster: LocalCluster;

beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  cluster = await LocalCluster.start({ workers: 2 });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await cluster?.close();
});

function dashboard(c: LocalCluster): string {
  if (!c.dashboardUrl) throw new Error('the cluster serves no dashboard');
  return c.dashboardUrl;
}

describe('dashboard', () => {
  it('the status page shows both workers, and a running graph\'s progress reaching done', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${dashboard(cluster)}/status`);
      await page.locator('#live[data-connected="yes"]').waitFor({ timeout: 15_000 });
      await expect.poll(() => page.locator('#workers-panel .worker-row').count(), { timeout: 15_000 }).toBe(2);
      const client = await cluster.client();
      try {
        // Long enough to be seen running: 400 tasks of 5 ms on 2 threads.
        const g = new Map<string, TaskDef>();
        for (let i = 0; i < 400; i++) g.set(`dash-busy-${i}`, { fn: fn('busy'), args: [5] });
        const running = client.get(g, [...g.keys()]);
        const row = page.locator('#progress .group-row[data-group="busy"]');
        await row.waitFor({ timeout: 15_000 });
        await running;
        // The page catches up within a few updates: every task of the group done, none waiting.
        await expect.poll(async () => [await row.getAttribute('data-done'), await row.getAttribute('data-waiting')], { timeout: 10_000 }).toEqual(['400', '0']);
        expect(Number(await page.locator('#task-stream canvas').getAttribute('data-tasks'))).toBeGreaterThan(0);
      } finally {
        await client.close();
      }
      // The workers page lists them too; the tasks page finds a task by its key.
      await page.goto(`${dashboard(cluster)}/workers`);
      await expect.poll(() => page.locator('#workers-table .worker-row').count(), { timeout: 10_000 }).toBe(2);
      await page.goto(`${dashboard(cluster)}/tasks`);
      await page.locator('input[type=search]').fill('dash-busy-399');
      await expect.poll(() => page.locator('#tasks-table .task-row').first().textContent(), { timeout: 10_000 }).toContain('dash-busy-399');
    } finally {
      await page.close();
    }
  }, 60_000);

  it('performanceReport writes one self-contained HTML file that draws the work in a browser', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-report-'));
    const page = await browser.newPage();
    try {
      const client = await cluster.client();
      const path = join(dir, 'report.html');
      try {
        const sum = await client.performanceReport(path, async () => {
          const g = new Map<string, TaskDef>();
          for (let i = 0; i < 200; i++) g.set(`report-inc-${i}`, { fn: fn('inc'), args: [i] });
          const values = (await client.get(g, [...g.keys()])) as number[];
          return values.reduce((a, b) => a + b, 0);
        });
        expect(sum).toBe(200 * 201 / 2);
      } finally {
        await client.close();
      }
      const html = readFileSync(path, 'utf8');
      // Nothing to fetch: the script and the data are inside.
      expect(html).not.toMatch(/<script[^>]+src=/);
      expect(existsSync(path)).toBe(true);
      const fetched: string[] = [];
      page.on('request', (r) => void (r.url().startsWith('file:') ? undefined : fetched.push(r.url())));
      await page.goto(pathToFileURL(path).href);
      const row = page.locator('#progress .group-row[data-group="inc"]');
      await row.waitFor({ timeout: 10_000 });
      expect(await row.getAttribute('data-done')).toBe('200');
      expect(Number(await page.locator('#task-stream canvas').getAttribute('data-tasks'))).toBe(200);
      expect(fetched).toEqual([]);
    } finally {
      await page.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("a job run's steps appear on the runs page", async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${dashboard(cluster)}/runs`);
      await page.locator('#live[data-connected="yes"]').waitFor({ timeout: 15_000 });
      const job = jobs.getJob('branching');
      const result = await executeJob(job, clusterExecutor.configured({ cluster: { existing: { address: cluster.address } } }), { module: jobs.location as string, jobName: 'branching' });
      expect(result.success).toBe(true);
      const run = page.locator(`section.run[data-run="${result.runId}"]`);
      await run.waitFor({ timeout: 15_000 });
      // Every step that ran on the cluster is listed, ended in success (a skipped step never reaches it).
      const ran = job.steps.filter((s) => result.eventsForNode(s.key).some((e) => e.type === 'STEP_SUCCESS'));
      expect(ran.length).toBeGreaterThan(1);
      for (const step of ran) await run.locator(`.step-row[data-step="${step.key}"][data-state="STEP_SUCCESS"]`).waitFor({ timeout: 15_000 });
    } finally {
      await page.close();
    }
  }, 60_000);

  it('a wrong token is refused; the right one opens the pages', async () => {
    const token = 'dashboard-test-token-0123456789';
    const tokened = await LocalCluster.start({ workers: 1, token });
    const page = await browser.newPage();
    try {
      const url = dashboard(tokened);
      // Without the token: the API refuses, the page sends the browser to the login form.
      expect((await fetch(`${url}/api/v1/workers`)).status).toBe(401);
      await page.goto(`${url}/status`);
      expect(new URL(page.url()).pathname).toBe('/login');
      await page.locator('input[name=token]').fill('not-the-token');
      const refused = page.waitForResponse((r) => r.url().endsWith('/login') && r.request().method() === 'POST');
      await page.locator('button[type=submit]').click();
      expect((await refused).status()).toBe(401);
      await page.locator('#wrong').waitFor();
      expect((await page.context().cookies()).find((c) => c.name === 'weft_token')).toBeUndefined();
      // The right token: the status page, live, with its worker.
      await page.locator('input[name=token]').fill(token);
      await page.locator('button[type=submit]').click();
      await page.waitForURL(`${url}/status`);
      await page.locator('#live[data-connected="yes"]').waitFor({ timeout: 15_000 });
      await expect.poll(() => page.locator('#workers-panel .worker-row').count(), { timeout: 15_000 }).toBe(1);
      // A bearer token works for the API.
      expect((await fetch(`${url}/api/v1/workers`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
    } finally {
      await page.close();
      await tokened.close();
    }
  }, 60_000);
});
