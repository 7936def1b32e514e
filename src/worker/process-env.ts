/** What a worker process is started with, by its nanny or, without one, by the local cluster. */

/**
 * How a worker process runs best under a memory limit (Dask's nanny sets the
 * same): glibc gives freed memory back to the system at once, and large
 * blocks (values) always come from their own mappings, which are returned
 * whole when freed; by default glibc keeps them once one has been freed, so
 * a worker's memory stays high after its results went to disk. The process
 * may run a garbage collection when it is over its limit (--expose-gc).
 */
export const WORKER_ENV: Readonly<Record<string, string>> = { MALLOC_TRIM_THRESHOLD_: '65536', MALLOC_MMAP_THRESHOLD_: '1048576' };
export const WORKER_NODE_FLAGS: readonly string[] = ['--expose-gc'];
