/**
 * The dashboard in a real browser: Debian's Chromium driven by
 * playwright-core, against real clusters over loopback (`.ci/run` installs
 * chromium). What a page draws is read from its screenshots (decoded with
 * pngjs), not only from its DOM.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { PNG } from 'pngjs';
import { clusterExecutor, LocalCluster } from '../src/index.ts';
import type { TaskDef } from '../src/client/graph.ts';
import { executeJob } from '../src/jobs/run.ts';
import jobs from './fixtures/jobs.ts';
import { mapped as mappedJob } from './fixtures/dynamic-jobs.ts';
import stepJobs from './fixtures/step-jobs.ts';
import { multiprocessExecutor } from '../src/jobs/executors/multiprocess.ts';
import type { ExecutorDefinition } from '../src/jobs/executor.ts';
import { Instance } from '../src/runs/instance.ts';

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
  // A limit the bars can be measured against: each worker's process (about 200 MB) fills a fifth to a half of it.
  cluster = await LocalCluster.start({ workers: 2, memoryLimit: '1GB' });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await cluster?.close();
});

function dashboard(c: LocalCluster): string {
  if (!c.dashboardUrl) throw new Error('the cluster serves no dashboard');
  return c.dashboardUrl;
}

/** A screenshot (of the page, or of one element), decoded: its pixels as [r, g, b] by (x, y). */
async function shot(target: Page | Locator): Promise<{ width: number; height: number; at(x: number, y: number): [number, number, number] }> {
  const png = PNG.sync.read(await target.screenshot());
  return {
    width: png.width,
    height: png.height,
    at: (x, y) => {
      const i = (png.width * y + x) * 4;
      return [png.data[i] ?? 0, png.data[i + 1] ?? 0, png.data[i + 2] ?? 0];
    },
  };
}

/** How many pixels of a screenshot are within `tolerance` of `rgb` on every channel. */
function pixels(img: Awaited<ReturnType<typeof shot>>, rgb: [number, number, number], tolerance = 6): number {
  let n = 0;
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const p = img.at(x, y);
      if (Math.abs(p[0] - rgb[0]) <= tolerance && Math.abs(p[1] - rgb[1]) <= tolerance && Math.abs(p[2] - rgb[2]) <= tolerance) n++;
    }
  }
  return n;
}

/** 'rgb(1, 2, 3)' (a computed style) as [1, 2, 3]. */
function rgbOf(css: string): [number, number, number] {
  const m = /rgba?\((\d+), (\d+), (\d+)/.exec(css);
  if (!m) throw new Error(`not a colour: ${css}`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** A request made from `local` (another loopback address): resolves with its status. */
function from(local: string, url: string, o: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: o.method ?? 'GET', localAddress: local, headers: { ...(o.body ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {}), ...o.headers } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

const ERRED: [number, number, number] = [0xdc, 0x26, 0x26];
/** Transfers are violet: more blue than red, far more than green. */
function violet(p: [number, number, number]): boolean {
  return p[2] > 150 && p[0] > 80 && p[0] < p[2] && p[1] < p[0] - 30;
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
        const futures = await client.compute(g, { keys: [...g.keys()] });
        const row = page.locator('#progress .group-row[data-group="busy"]');
        await row.waitFor({ timeout: 15_000 });
        await client.gather(Object.values(futures));
        // The page catches up within a few updates: every task of the group done, none waiting.
        await expect.poll(async () => [await row.getAttribute('data-done'), await row.getAttribute('data-total'), await row.getAttribute('data-waiting')], { timeout: 10_000 }).toEqual(['400', '400', '0']);
        expect(Number(await page.locator('#task-stream canvas').getAttribute('data-tasks'))).toBeGreaterThan(0);
        // Its results let go: the scheduler forgets the tasks, and the group leaves the page.
        for (const f of Object.values(futures)) f.release();
        await row.waitFor({ state: 'detached', timeout: 10_000 });
        // Held results of another graph, then a restart: every group goes with its tasks.
        const held = client.map(fn('inc'), [1, 2, 3]);
        await client.gather(held);
        const incRow = page.locator('#progress .group-row[data-group="inc"]');
        await incRow.waitFor({ timeout: 10_000 });
        await client.restart();
        await incRow.waitFor({ state: 'detached', timeout: 10_000 });
        expect(await page.locator('#progress td.muted').textContent()).toMatch(/^No task is held now/);
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

  it("opens with the last minute of tasks in their groups' colours, erred ones red and transfers violet, filling a 1400x900 window", async () => {
    const client = await cluster.client();
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    try {
      // Work done before the page opens: 200 tasks of 10 ms, and 6 that fail.
      const g = new Map<string, TaskDef>();
      for (let i = 0; i < 200; i++) g.set(`early-${i}`, { fn: fn('busy'), args: [10] });
      await client.get(g, [...g.keys()]);
      await Promise.allSettled(Array.from({ length: 6 }, (_, i) => client.submit(fn('fail'), `on purpose ${i}`).result()));
      await page.goto(`${dashboard(cluster)}/status`);
      await page.locator('#live[data-connected="yes"]').waitFor({ timeout: 15_000 });
      const canvas = page.locator('#task-stream canvas');
      expect(Number(await canvas.getAttribute('data-tasks'))).toBeGreaterThanOrEqual(206);
      const ended = /\(([\d,]+) tasks ended in the last 60 s\)/.exec((await page.locator('#task-stream h2').textContent()) ?? '');
      expect(Number(ended?.[1]?.replace(/,/g, ''))).toBeGreaterThanOrEqual(206);
      // The stream draws them: the group's colour (as its legend shows it) and the errors' red.
      const legend = page.locator('#task-stream .legend span', { hasText: /^busy$/ }).locator('i');
      const busy = rgbOf(await legend.evaluate((el) => (globalThis as unknown as { getComputedStyle(e: unknown): { backgroundColor: string } }).getComputedStyle(el).backgroundColor));
      const before = await shot(canvas);
      expect(pixels(before, busy)).toBeGreaterThan(200);
      expect(pixels(before, ERRED)).toBeGreaterThan(20);
      // A value fetched from one worker by a task on the other, while the page is open: a violet strip, not red.
      const [w0, w1] = await client.workers();
      const big = client.submitWith({ workers: [w0?.name as string] }, fn('bytes'), 32 * 1024 * 1024, 7);
      await client.submitWith({ workers: [w1?.name as string] }, fn('where'), big).result();
      await expect.poll(async () => { const img = await shot(canvas); let n = 0; for (let y = 0; y < img.height; y++) for (let x = 0; x < img.width; x++) if (violet(img.at(x, y))) n++; return n; }, { timeout: 10_000 }).toBeGreaterThan(20);
      big.release();
      // The page fills the window: the states chart's section reaches its last rows, the stream takes the height between.
      const full = await shot(page);
      let white = 0;
      for (let x = 20; x < full.width - 20; x++) {
        const p = full.at(x, full.height - 16);
        if (p[0] === 255 && p[1] === 255 && p[2] === 255) white++;
      }
      expect(white).toBeGreaterThan(full.width / 2);
      expect(await canvas.evaluate((el) => el.clientHeight)).toBeGreaterThan(300);
    } finally {
      await page.close();
      await client.close();
    }
  }, 60_000);

  it("draws each worker's memory against its limit, with the limit in its label", async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    try {
      await page.goto(`${dashboard(cluster)}/status`);
      await page.locator('#live[data-connected="yes"]').waitFor({ timeout: 15_000 });
      const cell = page.locator('#workers-panel .worker-row td.memory').first();
      await expect.poll(async () => Number(await cell.getAttribute('data-memory')), { timeout: 10_000 }).toBeGreaterThan(0);
      expect(Number(await cell.getAttribute('data-limit'))).toBe(1e9);
      expect(await cell.textContent()).toMatch(/ \/ 954 MiB/);
      const fraction = Number(await cell.getAttribute('data-memory')) / 1e9;
      // Along the bar's top row (above its label's text): the blue part is the memory, the rest is free.
      const bar = await shot(cell.locator('.bar'));
      let blue = 0;
      for (let x = 0; x < bar.width; x++) {
        const p = bar.at(x, 1);
        if (p[2] > p[0] + 60) blue++;
      }
      expect(blue / bar.width).toBeGreaterThan(fraction - 0.08);
      expect(blue / bar.width).toBeLessThan(fraction + 0.08);
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

  it('the runs page reads run storage: a run of each of three executors, and a failed one re-executes from the button', async () => {
    // The cluster's scheduler reads the instance in this file's WEFT_HOME, where these runs are recorded.
    const instance = await Instance.open();
    const dir = mkdtempSync(join(tmpdir(), 'weft-dash-runs-'));
    const page = await browser.newPage();
    try {
      const flag = join(dir, 'flag');
      writeFileSync(flag, 'up');
      const runConfig = { ops: { gate: { config: { flag } } } };
      const location = { module: new URL('./fixtures/step-jobs.ts', import.meta.url).href, jobName: 'mend' };
      const mend = stepJobs.getJob('mend');
      const inProcess = await mend.executeInProcess({ instance, outputStore: instance.outputStore, runConfig });
      const multi = await executeJob(mend, multiprocessExecutor as ExecutorDefinition, location, { instance, runConfig });
      const onCluster = await executeJob(mend, clusterExecutor.configured({ cluster: { existing: { address: cluster.address } } }) as ExecutorDefinition, location, { instance, runConfig });
      for (const r of [inProcess, multi, onCluster]) expect(r.success).toBe(false);

      await page.goto(`${dashboard(cluster)}/runs`);
      for (const [r, executor] of [
        [inProcess, 'in_process'],
        [multi, 'multiprocess'],
        [onCluster, 'cluster'],
      ] as const) {
        const section = page.locator(`section.run[data-run="${r.runId}"][data-executor="${executor}"][data-status="FAILURE"]`);
        await section.waitFor({ timeout: 15_000 });
        await section.locator('.step-row[data-step="gate"][data-state="STEP_FAILURE"]').waitFor();
        await section.locator('.step-row[data-step="double"][data-state="STEP_SUCCESS"]').waitFor();
        await section.locator('.step-row[data-step="report"][data-state="NOT_STARTED"]').waitFor();
      }
      // Copies of a mapped step (op[key]) are grouped under their op.
      const dynamic = await mappedJob.executeInProcess({ instance });
      const mappedSection = page.locator(`section.run[data-run="${dynamic.runId}"]`);
      const group = mappedSection.locator('.step-group[data-template="square"]');
      await group.locator('summary', { hasText: 'square[...] · 3 copies: 3 success' }).waitFor({ timeout: 15_000 });
      await group.locator('summary').click();
      await group.locator('.step-row[data-step="square[k1]"][data-state="STEP_SUCCESS"]').waitFor();
      await mappedSection.locator('.step-row[data-step="total"][data-state="STEP_SUCCESS"]').waitFor();

      const section = page.locator(`section.run[data-run="${multi.runId}"]`);
      await section.locator('button.reexecute').click();
      await section.locator('.queued', { hasText: /queued run [0-9a-f-]{36}/ }).waitFor({ timeout: 10_000 });
      const queued = await instance.storage.listRuns({ statuses: ['QUEUED'] });
      expect(queued.map((r) => r.parentRunId)).toContain(multi.runId);
      // Another site's page cannot post it.
      const forged = await fetch(`${dashboard(cluster)}/api/v1/runs/${multi.runId}/reexecute`, { method: 'POST', headers: { Origin: 'https://evil.example' } });
      expect(forged.status).toBe(403);
    } finally {
      await page.close();
      await instance.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

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
      expect(await page.context().cookies()).toEqual([]);
      // The right token: the status page, live, with its worker.
      await page.locator('input[name=token]').fill(token);
      await page.locator('button[type=submit]').click();
      await page.waitForURL(`${url}/status`);
      await page.locator('#live[data-connected="yes"]').waitFor({ timeout: 15_000 });
      await expect.poll(() => page.locator('#workers-panel .worker-row').count(), { timeout: 15_000 }).toBe(1);
      // The cookie is a session of its own, not the token: HttpOnly, SameSite=Strict, expiring.
      const [session, ...others] = await page.context().cookies();
      expect(others).toEqual([]);
      expect(session?.name).toBe('weft_session');
      expect(session?.value).not.toContain(token);
      expect(session?.value.length).toBeGreaterThanOrEqual(40);
      expect([session?.httpOnly, session?.sameSite, session?.secure]).toEqual([true, 'Strict', false]);
      expect(session?.expires).toBeGreaterThan(Date.now() / 1000 + 3600);
      // A bearer token works for the API; the token as a cookie does not; a malformed cookie is refused, not an error.
      expect((await fetch(`${url}/api/v1/workers`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
      expect((await fetch(`${url}/api/v1/workers`, { headers: { Cookie: `weft_token=${token}` } })).status).toBe(401);
      expect((await fetch(`${url}/api/v1/workers`, { headers: { Cookie: 'weft_session=%E0%A4%A' } })).status).toBe(401);
      // Guessing, from an address of its own (failures are counted per address): the 6th wrong login within a second gets 429, and then even the right token waits.
      const tries: number[] = [];
      for (let i = 0; i < 6; i++) tries.push(await from('127.0.0.2', `${url}/login`, { method: 'POST', body: 'token=guess' }));
      expect(tries).toEqual([401, 401, 401, 401, 401, 429]);
      expect(await from('127.0.0.2', `${url}/api/v1/workers`, { headers: { Authorization: `Bearer ${token}` } })).toBe(429);
      // Another address is not held back.
      expect((await fetch(`${url}/api/v1/workers`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
    } finally {
      await page.close();
      await tokened.close();
    }
  }, 60_000);
});

describe('the dashboard port', () => {
  it('a second scheduler wanting the same default port serves its dashboard on a free one; a port asked for that is taken fails clearly', async () => {
    const { SchedulerServer } = await import('../src/scheduler/server.ts');
    const first = await SchedulerServer.start({ port: 0, dashboardPort: 0 });
    try {
      const taken = Number(new URL(first.dashboardUrl as string).port);
      const second = await SchedulerServer.start({ port: 0, dashboardPort: taken, dashboardFallback: true });
      try {
        const url = second.dashboardUrl as string;
        expect(Number(new URL(url).port)).not.toBe(taken);
        expect((await fetch(`${url}/health`)).status).toBe(200);
      } finally {
        await second.close();
      }
      await expect(SchedulerServer.start({ port: 0, dashboardPort: taken })).rejects.toThrow(new RegExp(`cannot serve the dashboard port on 127\\.0\\.0\\.1:${taken}: .*EADDRINUSE.*; pick another with --dashboard-port, or --no-dashboard`));
    } finally {
      await first.close();
    }
  });
});
