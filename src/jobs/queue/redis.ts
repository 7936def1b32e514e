/**
 * Redis connections for the queue executor and its workers (ioredis, as
 * BullMQ wants them), loaded on first use. A wrong address or a Redis that is
 * down gives a clear error within seconds instead of a hang.
 */
import type { Redis, RedisOptions } from 'ioredis';
import { WeftError } from '../../errors.ts';
import { optionalPackage } from '../../util/optional.ts';

export const CONNECT_TIMEOUT_MS = 5_000;

/** Redis could not be reached, or went away in the middle of a run. */
export class RedisUnavailableError extends WeftError {
  override name = 'RedisUnavailableError';
}

/** A connection to `url` ('redis://HOST:PORT/DB' or 'rediss://'), checked with a PING. */
export async function connectRedis(url: string, extra: RedisOptions = {}): Promise<Redis> {
  const { Redis } = await optionalPackage(['bullmq', 'ioredis'], 'the queue executor', () => import('ioredis'));
  // BullMQ needs maxRetriesPerRequest null on the connections it blocks on.
  const redis = new Redis(url, { maxRetriesPerRequest: null, connectTimeout: CONNECT_TIMEOUT_MS, lazyConnect: true, ...extra });
  redis.on('error', () => {}); // reported through the commands that fail
  try {
    await withTimeout(redis.connect().then(() => redis.ping()), CONNECT_TIMEOUT_MS);
  } catch (err) {
    redis.disconnect();
    throw new RedisUnavailableError(`cannot reach Redis at ${redact(url)}: ${(err as Error).message}`);
  }
  return redis;
}

/** Another connection like `redis`; its errors, too, are reported through the commands that fail (ioredis prints unheard ones). */
export function duplicateRedis(redis: Redis, extra: RedisOptions = {}): Redis {
  const copy = redis.duplicate(extra);
  copy.on('error', () => {});
  return copy;
}

/** The URL without its password, for messages. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
    }),
  ]);
}
