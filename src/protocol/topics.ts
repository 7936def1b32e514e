/**
 * Task-event topics with a meaning beyond the clients subscribed to them: the
 * cluster executor's steps publish their run's events on `weft-run:RUN_ID`,
 * and the scheduler's dashboard reads them there for its runs page.
 */
export const RUN_TOPIC_PREFIX = 'weft-run:';

/**
 * The run events in one message of a run topic, in order: a step publishes
 * an event, or a list of them (its items, jobs/step/cluster-task.ts).
 */
export function eachRunEvent(message: unknown, take: (event: unknown) => void): void {
  if (!Array.isArray(message)) return take(message);
  for (const one of message as unknown[]) take(one);
}
