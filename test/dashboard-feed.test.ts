/** The scheduler's live runs view (dashboard/feed.ts) from the task events of the cluster executor's steps. */
import { afterEach, describe, expect, it } from 'vitest';
import { DashboardFeed } from '../src/scheduler/dashboard/feed.ts';
import { encode } from '../src/protocol/codec.ts';
import { RUN_TOPIC_PREFIX } from '../src/protocol/topics.ts';

const feed = new DashboardFeed({ workers: () => [], states: () => ({}), groups: () => [], task: () => null });
afterEach(() => feed.close());

const ev = (type: string, stepKey: string, t: number, output?: string) => ({ type, runId: 'r1', stepKey, timestamp: t, message: `${stepKey} ${type}`, ...(output ? { output } : {}) });

describe('dashboard feed', () => {
  it("takes a step's items as one list of events, in order, beside single events; what is not a run event is left out", () => {
    const topic = `${RUN_TOPIC_PREFIX}r1`;
    feed.taskEvents(
      [topic, topic, topic, topic, 'progress'],
      [encode(ev('STEP_START', 'fan', 1)), encode([ev('STEP_OUTPUT', 'fan', 2, 'result[a]'), { not: 'an event' }, ev('STEP_OUTPUT', 'fan', 3, 'result[b]')]), encode(ev('STEP_SUCCESS', 'fan', 4)), new Uint8Array([0xc1]), encode(ev('STEP_START', 'x', 5))],
    );
    const [run] = feed.runsNow();
    expect(run?.events.map((e) => [e.type, e.timestamp])).toEqual([
      ['STEP_START', 1],
      ['STEP_OUTPUT', 2],
      ['STEP_OUTPUT', 3],
      ['STEP_SUCCESS', 4],
    ]);
    expect(run?.steps.map((s) => [s.key, s.state])).toEqual([['fan', 'STEP_SUCCESS']]);
  });
});
