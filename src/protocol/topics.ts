/**
 * Task-event topics with a meaning beyond the clients subscribed to them: the
 * cluster executor's steps publish their run's events on `weft-run:RUN_ID`,
 * and the scheduler's dashboard reads them there for its runs page.
 */
export const RUN_TOPIC_PREFIX = 'weft-run:';
