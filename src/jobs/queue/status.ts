/** `weft queue status`: per queue, its waiting, active and delayed steps and live workers. */
import type { Queue } from 'bullmq';
import { connectRedis, duplicateRedis } from './redis.ts';
import { optionalPackage } from '../../util/optional.ts';

export interface QueueStatus {
  name: string;
  waiting: number;
  active: number;
  delayed: number;
  workers: string[];
}

export async function queueStatus(url: string, prefix: string, only: string[] | null): Promise<{ queues: QueueStatus[] }> {
  const redis = await connectRedis(url);
  try {
    const { Queue } = await optionalPackage(['bullmq', 'ioredis'], 'weft queue status', () => import('bullmq'));
    let names = only;
    if (!names) {
      // BullMQ keeps a 'meta' hash per queue: PREFIX:NAME:meta.
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*:meta`, 'COUNT', 1000);
        cursor = next;
        keys.push(...batch);
      } while (cursor !== '0');
      names = [...new Set(keys.map((k) => k.slice(prefix.length + 1, -':meta'.length)))].sort();
    }
    const queues: QueueStatus[] = [];
    for (const name of names) {
      const connection = duplicateRedis(redis, { maxRetriesPerRequest: null });
      const q = new Queue(name, { connection, prefix });
      try {
        const counts = await q.getJobCounts('waiting', 'prioritized', 'active', 'delayed');
        queues.push({ name, waiting: (counts['waiting'] ?? 0) + (counts['prioritized'] ?? 0), active: counts['active'] ?? 0, delayed: counts['delayed'] ?? 0, workers: await liveWorkers(q) });
      } finally {
        await q.close();
        connection.disconnect();
      }
    }
    return { queues };
  } finally {
    redis.disconnect();
  }
}

/**
 * The names of the workers taking steps from `q`, as `weft queue-worker
 * --name` gave them. BullMQ finds them among Redis's clients, named
 * PREFIX:QUEUE-IN-BASE64:w:NAME.
 */
export async function liveWorkers(q: Queue): Promise<string[]> {
  const clients = await q.getWorkers();
  return clients
    .map((c) => {
      const raw = c['rawname'] ?? c['name'] ?? '?';
      const at = raw.indexOf(':w:');
      return at < 0 ? raw : raw.slice(at + 3);
    })
    .sort();
}
