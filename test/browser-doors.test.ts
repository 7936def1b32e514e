/**
 * Closed to browsers (real Chromium, real clusters over loopback): a page
 * served from another local port cannot open a WebSocket to a scheduler, a
 * worker or a step coordinator, with or without a token, unless its origin
 * is allowed; and a page whose host name resolves to 127.0.0.1 (DNS
 * rebinding, made here with Chromium's resolver rules) cannot read the
 * dashboard.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { LocalCluster } from '../src/index.ts';
import { listen } from '../src/protocol/listen.ts';

let browser: Browser;
let page: Server;
let origin = '';

beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--host-resolver-rules=MAP rebind.test 127.0.0.1'],
  });
  // The attacker's page: any page the user has open, here on another local port.
  page = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end('<!doctype html><title>a page</title>');
  });
  await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', () => resolve()));
  origin = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => page.close(() => resolve()));
});

/** From the attacker's page: whether a WebSocket to each address opened ('open') or failed ('refused'). */
async function tryFromPage(addresses: string[]): Promise<string[]> {
  const tab = await browser.newPage();
  try {
    await tab.goto(`${origin}/`);
    return await tab.evaluate(
      (urls) =>
        Promise.all(
          urls.map(
            (url) =>
              new Promise<string>((resolve) => {
                const W = (globalThis as unknown as { WebSocket: new (u: string) => { onopen: () => void; onerror: () => void; close(): void } }).WebSocket;
                const ws = new W(url);
                ws.onopen = () => {
                  ws.close();
                  resolve('open');
                };
                ws.onerror = () => resolve('refused');
              }),
          ),
        ),
      addresses,
    );
  } finally {
    await tab.close();
  }
}

/** A GET with this Host header; resolves with the status. */
function getWithHost(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('closed to browsers', () => {
  it('a web page cannot open a WebSocket to the scheduler, a worker or a coordinator, with or without a token', async () => {
    for (const token of [undefined, 'a-token-of-sixteen-chars']) {
      const cluster = await LocalCluster.start({ workers: 1, ...(token ? { token } : {}) });
      // The door every port has, as the step coordinator opens it.
      const coordinator = await listen('127.0.0.1', 0, { maxPayload: 1 << 20 });
      try {
        const client = await cluster.client();
        const [w] = await client.workers();
        await client.close();
        expect(await tryFromPage([cluster.address, w?.address as string, coordinator.address])).toEqual(['refused', 'refused', 'refused']);
      } finally {
        coordinator.server.close();
        await cluster.close();
      }
    }
  }, 90_000);

  it('an origin allowed with --allow-origin may open one (so the refusal is the Origin check)', async () => {
    const cluster = await LocalCluster.start({ workers: 1, allowOrigins: [origin] });
    try {
      const client = await cluster.client();
      const [w] = await client.workers();
      await client.close();
      expect(await tryFromPage([cluster.address, w?.address as string])).toEqual(['open', 'open']);
    } finally {
      await cluster.close();
    }
  }, 60_000);

  it('the dashboard refuses a host name it does not know (DNS rebinding), and answers its own, localhost and --allow-host', async () => {
    const cluster = await LocalCluster.start({ workers: 1, allowHosts: ['weft.internal'] });
    try {
      const url = cluster.dashboardUrl as string;
      const port = new URL(url).port;
      // In a browser: rebind.test resolves to 127.0.0.1, as an attacker's name would after rebinding.
      const tab = await browser.newPage();
      try {
        const res = await tab.goto(`http://rebind.test:${port}/api/v1/workers`);
        expect(res?.status()).toBe(421);
        expect(await tab.textContent('body')).toMatch(/answers its own address only/);
        expect((await tab.goto(`${url}/api/v1/workers`))?.status()).toBe(200);
      } finally {
        await tab.close();
      }
      expect(await getWithHost(`${url}/health`, `localhost:${port}`)).toBe(200);
      expect(await getWithHost(`${url}/health`, `weft.internal:${port}`)).toBe(200);
      expect(await getWithHost(`${url}/health`, `[::1]:${port}`)).toBe(200);
      expect(await getWithHost(`${url}/health`, `evil.example:${port}`)).toBe(421);
    } finally {
      await cluster.close();
    }
  }, 60_000);
});
