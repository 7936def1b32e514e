/** `weft queue status`: per queue, its waiting, active and delayed steps and live workers. */
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
        const workers = await q.getWorkers();
        queues.push({ name, waiting: (counts['waiting'] ?? 0) + (counts['prioritized'] ?? 0), active: counts['active'] ?? 0, delayed: counts['delayed'] ?? 0, workers: workers.map((w) => w['rawname'] ?? w['name'] ?? '?').sort() });
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
