/**
 * TLS between real processes on loopback: a cluster with a temporary CA
 * runs a graph whose data moves worker to worker over wss://; plain and
 * untrusted connections are refused with an error that says why; a cluster
 * that requires client certificates refuses a client without one.
 */
import { readFileSync, rmSync } from 'node:fs';
import { get, request } from 'node:https';
import { describe, expect, it } from 'vitest';
import { Client, LocalCluster, ref, type TaskDef } from '../src/index.ts';
import { temporaryTls } from '../src/protocol/tls.ts';

const TASKS = new URL('./fixtures/tasks.ts', import.meta.url).href;
const fn = (name: string): string => `${TASKS}#${name}`;

describe('TLS', () => {
  it("a self-signed cluster runs a graph over wss:// (data moving between workers); plain and untrusted connections are refused, saying why", async () => {
    const cluster = await LocalCluster.start({ workers: 2, tls: 'self-signed' });
    try {
      expect(cluster.address).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
      const client = await cluster.client();
      try {
        const [a, b] = await client.workers();
        if (!a || !b) throw new Error('two workers expected');
        expect([a.address, b.address].every((x) => x.startsWith('wss://'))).toBe(true);
        const g = new Map<string, TaskDef>([
          ['tls-made', { fn: fn('bytes'), args: [200_000, 3], workers: [a.name] }],
          ['tls-taken', { fn: fn('where'), args: [ref('tls-made')], workers: [b.name] }],
        ]);
        const [made, taken] = (await client.get(g, ['tls-made', 'tls-taken'])) as [Uint8Array, { inputBytes: number }];
        expect(made.length).toBe(200_000);
        expect(taken.inputBytes).toBe(200_000);
        expect((await client.workerMetrics())[b.address]?.bytesFetched).toBeGreaterThanOrEqual(200_000);
        // The dashboard is https:// with the same certificate.
        expect(cluster.dashboardUrl).toMatch(/^https:\/\//);
      } finally {
        await client.close();
      }
      await expect(Client.connect(cluster.address.replace('wss://', 'ws://'), { timeoutMs: 5000 })).rejects.toThrow(/TLS port\? connect with wss:\/\//);
      await expect(Client.connect(cluster.address, { timeoutMs: 5000 })).rejects.toThrow(/not signed by a CA this side trusts/);
    } finally {
      await cluster.close();
    }
  }, 60_000);

  it('with --tls-require-client-cert, a client without a certificate is refused and one with it is served', async () => {
    const { dir, files } = temporaryTls();
    try {
      const cluster = await LocalCluster.start({ workers: 1, tls: { ...files, requireClientCert: true } });
      try {
        const ca = readFileSync(files.ca);
        await expect(Client.connect(cluster.address, { tls: { ca }, timeoutMs: 5000 })).rejects.toThrow(/cannot connect|closed the connection/);
        const client = await cluster.client();
        expect(await client.submit((x: number) => x + 1, 1)).toBe(2);
        await client.close();
        const status = await new Promise<number>((resolve, reject) => {
          get(`${cluster.dashboardUrl}/health`, { ca }, (res) => resolve(res.statusCode ?? 0)).on('error', reject);
        });
        expect(status).toBe(200);
      } finally {
        await cluster.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("under TLS the dashboard's session cookie is Secure, and it is not the token", async () => {
    const { dir, files } = temporaryTls();
    const token = 'tls-dashboard-token-0123456789';
    try {
      const cluster = await LocalCluster.start({ workers: 1, tls: files, token });
      try {
        const ca = readFileSync(files.ca);
        const cookie = await new Promise<string>((resolve, reject) => {
          const req = request(`${cluster.dashboardUrl}/login`, { method: 'POST', ca, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } }, (res) => {
            res.resume();
            resolve(String(res.headers['set-cookie'] ?? ''));
          });
          req.on('error', reject);
          req.end(`token=${token}`);
        });
        expect(cookie).toMatch(/^weft_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+; Secure$/);
        expect(cookie).not.toContain(token);
      } finally {
        await cluster.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
