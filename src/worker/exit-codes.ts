/** Exit codes of a worker process that tell its nanny what to do. */

/** Stopped over its memory limit: start a fresh one (after the usual back-off). */
export const MEMORY_EXIT_CODE = 3;

/** Asked to restart (client.restart): start it again at once. */
export const RESTART_EXIT_CODE = 4;
