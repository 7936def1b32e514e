/**
 * The frames a launcher writes its events into for the run writer thread
 * (runs/event-frames.ts): what the thread reads back is, event by event,
 * the row the event makes when stored directly (eventColumns), for any
 * event: text in any script, fields missing or of other types than
 * declared, batches larger than the first buffer.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { outputEvent, RUN_EVENT_TYPES, stepEvent, stepMessageKind, type RunEvent } from '../src/jobs/events.ts';
import { EventFrames, readEventFrames } from '../src/runs/event-frames.ts';
import { eventColumns } from '../src/runs/records.ts';

/** Text with no lone surrogate (UTF-8 cannot hold one; JSON would escape it). */
const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary', maxLength: 40 }).map((s) => s.toWellFormed()));
const maybe = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined });
const odd = fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), text, fc.double());

const anEvent: fc.Arbitrary<RunEvent> = fc
  .record({
    type: fc.constantFrom(...RUN_EVENT_TYPES),
    stepKey: fc.option(text, { nil: null }),
    timestamp: fc.oneof(fc.integer({ min: 0, max: 2 ** 45 }), fc.double()),
    message: text,
    level: maybe(fc.constantFrom('debug', 'info', 'warn', 'error')),
    data: maybe(fc.dictionary(text, fc.jsonValue(), { maxKeys: 3 })),
    error: maybe(fc.record({ name: text, message: text, stack: maybe(text) })),
    output: maybe(fc.oneof(text, odd)),
    stored: maybe(fc.oneof(fc.boolean(), odd)),
    attempt: maybe(fc.oneof(fc.nat(), fc.double(), odd)),
    retryInSeconds: maybe(fc.double()),
    pid: maybe(fc.oneof(fc.nat(), odd)),
  })
  .map((r) => {
    const ev: Record<string, unknown> = { runId: 'r' };
    for (const [k, v] of Object.entries(r)) if (v !== undefined) ev[k] = v;
    return ev as unknown as RunEvent;
  });

/** Events as a step attempt makes them: their messages are made again from the step key and output, not sent. */
const aStepEvent: fc.Arbitrary<RunEvent> = fc.oneof(
  fc.record({ type: fc.constantFrom('STEP_START' as const, 'STEP_SUCCESS' as const), key: text, attempt: fc.nat(5), pid: fc.nat() }).map((r) => stepEvent(r.type, 'r', r.key, r.attempt, r.pid)),
  fc.record({ key: text, output: text, value: fc.jsonValue(), emitted: fc.boolean() }).map((r) => outputEvent('r', r.key, 0, 7, r.output, r.value, r.emitted)),
);

function throughFrames(events: readonly RunEvent[]): ReturnType<typeof readEventFrames> {
  const frames = new EventFrames();
  for (const ev of events) frames.add(ev);
  expect(frames.count).toBe(events.length);
  // As the thread gets them: a copy, in a buffer of its own.
  return readEventFrames(new Uint8Array(frames.bytes()));
}

describe('event frames', () => {
  it('read back as the rows the events make stored directly', () => {
    fc.assert(
      fc.property(fc.array(anEvent, { maxLength: 30 }), (events) => {
        expect(throughFrames(events)).toEqual(events.map(eventColumns));
      }),
      { numRuns: 300 },
    );
  });

  it("a step's start, end and outputs: their messages made again, even in any script; a message changed since is sent as it is", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(aStepEvent, anEvent), { maxLength: 30 }), (events) => {
        expect(throughFrames(events)).toEqual(events.map(eventColumns));
      }),
      { numRuns: 300 },
    );
    const start = stepEvent('STEP_START', 'r', 'étape_1', 0, 1);
    const out = outputEvent('r', 'étape_1', 0, 1, 'result', 5);
    const item = outputEvent('r', 'fan', 0, 1, 'result:k1', 5, true);
    expect([start, out, item].map(stepMessageKind)).toEqual([1, 3, 4]);
    expect([start.message, out.message, item.message]).toEqual(['started step étape_1', 'step étape_1 produced output result', 'step fan emitted result:k1']);
    // An event as plain data to everyone else.
    expect(JSON.parse(JSON.stringify(out))).toEqual({ type: 'STEP_OUTPUT', runId: 'r', stepKey: 'étape_1', timestamp: out.timestamp, message: 'step étape_1 produced output result', attempt: 0, pid: 1, output: 'result', value: 5 });
    expect(Object.keys(start)).toEqual(['type', 'runId', 'stepKey', 'timestamp', 'message', 'attempt', 'pid']);
    (start as { message: string }).message = 'something else';
    expect(stepMessageKind(start)).toBe(0);
    expect(throughFrames([start])).toEqual([eventColumns(start)]);
  });

  it('a batch larger than the first buffer, and a message of a megabyte', () => {
    const events: RunEvent[] = Array.from({ length: 5000 }, (_, i) => ({ type: 'STEP_OUTPUT', runId: 'r', stepKey: `inc_${i}`, timestamp: 1_796_650_635_949 + i, message: `step inc_${i} produced output result`, output: 'result', value: i, attempt: 0, pid: 4242 }));
    events.push({ type: 'LOG', runId: 'r', stepKey: 's', timestamp: 1, message: 'é'.repeat(1 << 20), level: 'info' });
    const back = throughFrames(events);
    expect(back).toEqual(events.map(eventColumns));
    expect(JSON.parse(back[0]?.body ?? '')).toEqual({ message: 'step inc_0 produced output result', output: 'result', attempt: 0, pid: 4242 });
  });

  it('frames cut short, or of a type that is none, are refused', () => {
    const frames = new EventFrames();
    frames.add({ type: 'STEP_START', runId: 'r', stepKey: 's', timestamp: 1, message: 'started step s' });
    const bytes = frames.bytes();
    expect(() => readEventFrames(bytes.subarray(0, bytes.length - 3))).toThrow(RangeError);
    const bad = new Uint8Array(bytes);
    bad[0] = 200;
    expect(() => readEventFrames(bad)).toThrow(/type code 200/);
    expect(() => frames.add({ type: 'NOPE' as RunEvent['type'], runId: 'r', stepKey: null, timestamp: 1, message: '' })).toThrow(/NOPE/);
  });
});
