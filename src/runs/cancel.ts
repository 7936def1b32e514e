/**
 * Cancelling a stored run, from any process (`weft runs cancel`, the
 * dashboard). A queued run is canceled at once, in one compare-and-set
 * against the daemon's claim; a run under way is marked CANCELING, which
 * its launcher sees at its next heartbeat or batch of events and stops.
 */
import { RunNotFoundError } from './errors.ts';
import type { RunStatus } from './status.ts';
import type { RunStorage } from './storage.ts';

export type CancelOutcome = 'canceled' | 'canceling' | { already: RunStatus };

export async function cancelRun(storage: RunStorage, runId: string, why = 'asked to'): Promise<CancelOutcome> {
  const at = Date.now();
  if (await storage.transition(runId, { type: 'RUN_CANCELED', runId, stepKey: null, timestamp: at, message: `run ${runId} was canceled while queued (${why})` }, ['QUEUED'])) return 'canceled';
  if (await storage.transition(runId, { type: 'RUN_CANCELING', runId, stepKey: null, timestamp: at, message: `canceling run ${runId} (${why}): its launcher stops it` }, ['STARTING', 'STARTED'])) return 'canceling';
  const run = await storage.getRun(runId);
  if (!run) throw new RunNotFoundError(runId);
  return { already: run.status };
}
