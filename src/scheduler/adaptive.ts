/**
 * How many workers the cluster's work wants now (Dask's `adaptive_target`),
 * for whoever starts and stops them (LocalCluster.adapt, an operator polling
 * /api/v1/adaptive_target):
 *
 * - the work known, in thread-seconds: what is sent to workers (their
 *   occupancy) plus what waits in the scheduler's queue or for a worker, at
 *   each kind's measured duration; over `targetDuration` seconds, that many
 *   threads would finish it;
 * - no more threads than tasks ready to run or running;
 * - in workers: divided by the threads of a worker now (1 if none);
 * - memory: results filling more than 60% of the workers' limits ask for
 *   twice the workers there are.
 */
import type { SchedulerCore } from './core.ts';
import { expectedDuration } from './placement.ts';

/** Queued tasks looked at one by one at most; past that, the rest count at the average of those. */
const SAMPLE = 10_000;

export function adaptiveTarget(s: SchedulerCore, targetDuration: number): number {
  let work = 0;
  let threads = 0;
  let running = 0;
  let limit = 0;
  let held = 0;
  for (const w of s.workers.values()) {
    work += w.occupancy;
    threads += w.nthreads;
    running += w.busy;
    limit += w.memoryLimit;
    held += w.storedBytes;
  }
  // Entries no longer queued (removed lazily from the queue) are left out of the sample.
  const waiting = [...s.queue.some(SAMPLE).filter((ts) => ts.state === 'queued'), ...s.noWorker];
  let waitingWork = 0;
  for (const ts of waiting) waitingWork += expectedDuration(s, ts);
  const waitingCount = s.queue.size + s.noWorker.size;
  if (waiting.length > 0) work += (waitingWork / waiting.length) * waitingCount;
  const ready = running + waitingCount;
  const cpu = Math.min(ready, Math.ceil(work / Math.max(1e-3, targetDuration)));
  const perWorker = s.workers.size > 0 ? threads / s.workers.size : 1;
  let target = Math.ceil(cpu / perWorker);
  if (limit > 0 && held > 0.6 * limit) target = Math.max(target, 2 * s.workers.size);
  return target;
}
