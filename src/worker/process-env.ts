/** What a worker process is started with, by its nanny or, without one, by the local cluster. */

/**
 * How a worker process runs best under a memory limit:
 * - Large blocks (values of 4 MiB and more) come from mappings of their own,
 *   returned whole when freed; by default glibc keeps them once one has been
 *   freed, so a worker's memory stayed high after its results went to disk.
 * - Smaller blocks come from the heap, whose freed memory the next ones
 *   reuse: a mapping is fresh memory, which the kernel fills a page per
 *   fault, 20-60x slower than writing memory already touched on the
 *   development machine. With 1 MiB here, every 1 MiB partition of a
 *   shuffle, every batch of inputs for an executor thread and every block
 *   msgpackr encodes into was a fresh mapping: the shuffle ran 2,144 against
 *   2,611 tasks/s (4 alternating pairs; bench/README.md).
 * - Freed memory goes back to the system once 4 MiB of it is free at the
 *   top of a heap (Dask's nanny says 64 KiB): at most 4 MiB kept per arena,
 *   of two, saves faulting it in again (the shuffle 2,502 -> 2,668 tasks/s
 *   over 8 alternating pairs).
 * The process may run a garbage collection when it is over its limit
 * (--expose-gc).
 */
const WORKER_MALLOC: Readonly<Record<string, string>> = { MALLOC_TRIM_THRESHOLD_: '4194304', MALLOC_MMAP_THRESHOLD_: '4194304' };
export const WORKER_NODE_FLAGS: readonly string[] = ['--expose-gc'];

/**
 * glibc (2.35 on) asks for transparent huge pages for what malloc maps: a
 * value received or computed lands in fresh memory, which the kernel then
 * fills 2 MiB per fault instead of 4 KiB. On the development machine that
 * is 2-3x faster for fresh memory, and the bandwidth bench's 1 GiB moved
 * and gathered 35-45% faster (bench/README.md). Where the kernel gives huge
 * pages only when asked ("madvise", the usual default), this asks.
 */
const HUGE_PAGES = 'glibc.malloc.hugetlb=1';

/** A worker's environment: `env` over the settings above, with huge pages added to any glibc tunables `env` has (its own choice kept). */
export function workerEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const tunables = env['GLIBC_TUNABLES'];
  const glibc = !tunables ? HUGE_PAGES : tunables.includes('glibc.malloc.hugetlb=') ? tunables : `${tunables}:${HUGE_PAGES}`;
  return { ...WORKER_MALLOC, ...env, GLIBC_TUNABLES: glibc };
}
