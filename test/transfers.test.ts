/**
 * Integration: values of every size moved between workers, through executor
 * threads and to the client, checked by SHA-256 at each end; a transfer cut
 * by a worker killed with -9 mid-frame.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ref, type TaskDef } from '../src/index.ts';
import { fn, twoWorkers, waitFor, withCluster } from './helpers/util.ts';
import { patterned } from './fixtures/tasks.ts';

const sha = (a: Uint8Array): string => createHash('sha256').update(a).digest('hex');

describe('values on the move', () => {
  it('0 B, 1 B, 64 MiB and 1 GiB round-trip intact: made in a thread on one worker, read in a thread on the other, gathered by the client', async () => {
    await withCluster({ workers: 2, threadsPerWorker: 1, logLevel: 'warn' }, async (_cluster, client) => {
      const [a, b] = await twoWorkers(client);
      for (const [n, buffer] of [[0, false], [1, true], [64 << 20, false], [1 << 30, true]] as const) {
        const g = new Map<string, TaskDef>([
          [`src-${n}`, { fn: fn('patterned'), args: [n, n % 251, buffer], workers: [a.name] }],
          [`digest-${n}`, { fn: fn('digest'), args: [ref(`src-${n}`)], workers: [b.name] }],
        ]);
        const [value, remote] = (await client.get(g, [`src-${n}`, `digest-${n}`])) as [Uint8Array, { sha: string; kind: string; length: number }];
        const expected = sha(patterned(n, n % 251, buffer));
        expect({ n, length: value.length, kind: value.constructor.name }).toEqual({ n, length: n, kind: buffer ? 'Buffer' : 'Uint8Array' });
        expect(remote).toEqual({ sha: expected, kind: buffer ? 'Buffer' : 'Uint8Array', length: n });
        expect(sha(value)).toBe(expected);
      }
    });
  }, 180_000);

  it('a worker asked for more than its memory limit in inputs from two peers at once stays under it (fetches wait their turn), and every task gets its input whole', async () => {
    const limit = 768 << 20;
    await withCluster({ workers: 3, threadsPerWorker: 1, memoryLimit: limit, logLevel: 'warn' }, async (cluster, client) => {
      const [a, b, c] = await client.workers();
      if (!a || !b || !c) throw new Error('three workers expected');
      const n = 16 << 20;
      // 768 MiB (the limit) made on two workers first, then all of it asked for at once by tasks on the third.
      const sources = Array.from({ length: 48 }, (_, i) => client.submitWith({ workers: [i % 2 === 0 ? a.name : b.name], key: `mem-src-${i}` }, fn('patterned'), n, i, false));
      await Promise.all(sources.map((f) => f.done()));
      const g = new Map<string, TaskDef>();
      const keys: string[] = [];
      for (let i = 0; i < 48; i++) {
        g.set(`mem-digest-${i}`, { fn: fn('digestSlowly'), args: [ref(`mem-src-${i}`), 30], workers: [c.name] });
        keys.push(`mem-digest-${i}`);
      }
      const taker = cluster.workers.find((w) => w.name === c.name);
      if (!taker?.pid) throw new Error('no pid for the taker');
      writeFileSync(`/proc/${taker.pid}/clear_refs`, '5');
      const digests = (await client.get(g, keys)) as { sha: string; length: number }[];
      digests.forEach((d, i) => expect(d.sha, `input ${i}`).toBe(sha(patterned(n, i, false))));
      // The same processes all along (none stopped over its limit and started again), and the taker's peak under its limit.
      expect((await client.workers()).map((w) => w.pid).sort()).toEqual([a.pid, b.pid, c.pid].sort());
      const peak = Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${taker.pid}/status`, 'utf8'))?.[1]) * 1024;
      expect(peak).toBeLessThan(limit);
    });
  }, 120_000);

  it('a transfer cut mid-frame by its sender killed with -9: the value is made again, the taker gets it whole', async () => {
    await withCluster({ workers: 2, threadsPerWorker: 1, logLevel: 'warn' }, async (cluster, client) => {
      const [a, b] = await twoWorkers(client);
      const n = 512 << 20;
      const src = client.submitWith({ workers: [a.name], key: 'cut-src' }, fn('patterned'), n, 3, false);
      await src.done();
      const before = (await client.workerMetrics())[a.address]?.bytesSentToPeers ?? 0;
      const taken = client.submitWith({ workers: [b.name], key: 'cut-digest' }, fn('digest'), src);
      // The sender has begun (it counts a value as it starts sending it); the taker has not finished fetching it.
      await waitFor(async () => {
        const m = await client.workerMetrics();
        return (m[a.address]?.bytesSentToPeers ?? 0) > before;
      }, 30_000, 'the transfer to start');
      const fetched = (await client.workerMetrics())[b.address]?.bytesFetched ?? 0;
      const victim = cluster.workers.find((w) => w.name === a.name);
      if (!victim?.pid) throw new Error('no pid for the sender');
      process.kill(victim.pid, 'SIGKILL');
      expect(fetched).toBeLessThan(n);
      // Made again (on the sender's successor, which its nanny starts under its name), and taken whole.
      expect(await taken).toEqual({ sha: sha(patterned(n, 3, false)), kind: 'Uint8Array', length: n });
    });
  }, 120_000);
});
