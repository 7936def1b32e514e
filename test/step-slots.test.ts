/**
 * The step-delegating loop's decisions (src/jobs/delegating/slots.ts) driven
 * as the loop drives them, with attempts that end as a random sequence says:
 * random jobs, slots, tag limits, retries with delays, steps started ahead.
 * Every run ends, and no limit is ever exceeded.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { job, op, type OutputHandle } from '../src/index.ts';
import { event } from '../src/jobs/events.ts';
import { ActiveExecution, buildPlan, type ExecutionPlan, type PlannedStep } from '../src/jobs/plan.ts';
import { StepSlots, type TagLimit } from '../src/jobs/delegating/slots.ts';

interface Shape {
  /** Per step: indices of earlier steps it takes, its tag, how many of its attempts fail first. */
  steps: { upstream: number[]; tag: 'a' | 'b'; failures: number; priority: number }[];
  maxConcurrent: number;
  limits: TagLimit[];
  startAhead: boolean;
  /** Seconds a failed attempt waits before its retry. */
  delay: number;
}

const shape: fc.Arbitrary<Shape> = fc.record({
  steps: fc.array(
    fc.record({
      upstream: fc.array(fc.nat(), { maxLength: 3 }),
      tag: fc.constantFrom('a' as const, 'b' as const),
      failures: fc.nat({ max: 3 }),
      priority: fc.constantFrom(0, 0, 1),
    }),
    { minLength: 1, maxLength: 9 },
  ),
  maxConcurrent: fc.integer({ min: 1, max: 3 }),
  limits: fc.subarray([
    { key: 'group', value: 'a', limit: 1 },
    { key: 'group', limit: 2 },
  ]),
  startAhead: fc.boolean(),
  delay: fc.constantFrom(0, 0.2, 1),
});

/** Two retries at most: a step that fails three times fails for good. */
const MAX_RETRIES = 2;

function planOf(s: Shape): PlannedStep[] {
  const ops = s.steps.map((st, i) => op({ name: `s${i}`, tags: { group: st.tag, 'weft/priority': String(st.priority) } }, () => i));
  const j = job({ name: 'random' }, () => {
    const outs: OutputHandle[] = [];
    s.steps.forEach((st, i) => {
      const ups = i === 0 ? [] : [...new Set(st.upstream.map((u) => u % i))];
      outs.push((ops[i] as (...a: unknown[]) => OutputHandle)(...ups.map((u) => outs[u])));
    });
  });
  return [...buildPlan('r', j, new Map()).steps];
}

/** The shape's plan, its bookkeeping, and the loop's decisions over them. */
function machine(s: Shape): { plan: ExecutionPlan; steps: PlannedStep[]; active: ActiveExecution; slots: StepSlots } {
  const steps = planOf(s);
  const plan: ExecutionPlan = { runId: 'r', jobName: 'random', steps, external: [], mappedOver: new Map(), depth: new Map(), step: (k: string) => steps.find((x) => x.key === k) as PlannedStep, put: () => undefined, copies: () => [] };
  const active = new ActiveExecution(plan);
  return { plan, steps, active, slots: new StepSlots(active, { maxConcurrent: s.maxConcurrent, tagConcurrencyLimits: s.limits, startAhead: s.startAhead }) };
}

/** Runs the shape's job as the loop does; `choices` picks which attempt ends next, and how. */
function simulate(s: Shape, choices: number[]): { complete: boolean; maxHeld: number; launches: number } {
  const { plan, steps, active, slots } = machine(s);
  /** Attempts holding a slot: whether each still waits for its inputs. */
  const attempts = new Map<string, { early: boolean }>();
  const failuresLeft = new Map(steps.map((st, i) => [st.key, s.steps[i]?.failures ?? 0]));
  let now = 0;
  let c = 0;
  let maxHeld = 0;
  let launches = 0;
  const pick = (n: number): number => (choices[c++ % choices.length] ?? 0) % n;
  for (let turn = 0; turn < 1000; turn++) {
    for (const act of slots.next(now)) {
      if (act.kind === 'launch') {
        expect(attempts.has(act.step.key)).toBe(false);
        attempts.set(act.step.key, { early: act.early });
        launches++;
      } else if (act.kind === 'go') {
        expect(attempts.get(act.key)?.early).toBe(true);
        (attempts.get(act.key) as { early: boolean }).early = false;
      } else {
        expect(attempts.get(act.key)?.early).toBe(true);
        attempts.delete(act.key);
      }
    }
    // The limits hold after every decision.
    expect(slots.held).toBe(attempts.size);
    maxHeld = Math.max(maxHeld, attempts.size);
    expect(attempts.size).toBeLessThanOrEqual(s.maxConcurrent);
    for (const l of s.limits) {
      const n = [...attempts.keys()].filter((k) => plan.step(k).tags[l.key] !== undefined && (l.value === undefined || plan.step(k).tags[l.key] === l.value)).length;
      expect(n).toBeLessThanOrEqual(l.limit);
    }
    const runningKeys = [...attempts].filter(([, a]) => !a.early).map(([k]) => k);
    const earlyKeys = [...attempts].filter(([, a]) => a.early).map(([k]) => k);
    if (runningKeys.length === 0) {
      if (active.isComplete) break;
      const wait = active.nextRetryIn(now);
      // Nothing runs and nothing will: a run that never ends.
      if (wait === null) return { complete: false, maxHeld, launches };
      now += wait;
      continue;
    }
    // Now and then a process started ahead dies before its inputs exist.
    if (earlyKeys.length > 0 && pick(5) === 0) {
      const key = earlyKeys[pick(earlyKeys.length)] as string;
      attempts.delete(key);
      slots.release(key);
      continue;
    }
    const key = runningKeys[pick(runningKeys.length)] as string;
    const attempt = active.attempt(key);
    const left = failuresLeft.get(key) ?? 0;
    if (left > 0) {
      failuresLeft.set(key, left - 1);
      const ev =
        attempt < MAX_RETRIES
          ? event('STEP_UP_FOR_RETRY', 'r', key, 'failed', { attempt, retryInSeconds: s.delay })
          : event('STEP_FAILURE', 'r', key, 'failed', { attempt });
      active.handle(ev, now);
    } else {
      active.handle(event('STEP_OUTPUT', 'r', key, 'out', { output: 'result' }), now);
      active.handle(event('STEP_SUCCESS', 'r', key, 'ok', { attempt }), now);
    }
    attempts.delete(key);
    slots.release(key);
    now += 0.05 * pick(4);
  }
  return { complete: active.isComplete, maxHeld, launches };
}

describe('the step-delegating loop’s slots', () => {
  it('every run ends, within the limits, whatever order its attempts end in', () => {
    fc.assert(
      fc.property(shape, fc.array(fc.nat(), { minLength: 1, maxLength: 50 }), (s, choices) => {
        expect(simulate(s, choices).complete).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('a step due for retry takes the slot of a step started ahead, which starts ahead again later', () => {
    // s0 and s1 are roots; s2 takes s0's output. Two slots.
    const s: Shape = {
      steps: [
        { upstream: [], tag: 'a', failures: 0, priority: 0 },
        { upstream: [], tag: 'a', failures: 0, priority: 0 },
        { upstream: [0], tag: 'a', failures: 0, priority: 0 },
      ],
      maxConcurrent: 2,
      limits: [],
      startAhead: true,
      delay: 0.2,
    };
    const { active, slots } = machine(s);
    const kinds = (acts: ReturnType<StepSlots['next']>): unknown[] => acts.map((a) => (a.kind === 'launch' ? [a.kind, a.step.key, a.early] : [a.kind, a.key]));
    expect(kinds(slots.next(0))).toEqual([
      ['launch', 's0', false],
      ['launch', 's1', false],
    ]);
    // s1 fails; its retry is due in 0.2 s. Its slot goes to s2, started ahead (s0 runs).
    active.handle(event('STEP_UP_FOR_RETRY', 'r', 's1', 'failed', { attempt: 0, retryInSeconds: 0.2 }), 0);
    slots.release('s1');
    expect(kinds(slots.next(100))).toEqual([['launch', 's2', true]]);
    // The retry is due: s2 yields its slot to s1.
    expect(kinds(slots.next(200))).toEqual([
      ['stop', 's2'],
      ['launch', 's1', false],
    ]);
    // s1 ends: s2 is started ahead again in its slot.
    active.handle(event('STEP_SUCCESS', 'r', 's1', 'ok', { attempt: 1 }), 300);
    slots.release('s1');
    expect(kinds(slots.next(300))).toEqual([['launch', 's2', true]]);
    // s0 ends: s2 gets its inputs.
    active.handle(event('STEP_OUTPUT', 'r', 's0', 'out', { output: 'result' }), 400);
    active.handle(event('STEP_SUCCESS', 'r', 's0', 'ok', { attempt: 0 }), 400);
    slots.release('s0');
    expect(kinds(slots.next(400))).toEqual([['go', 's2']]);
  });

  it('starts steps ahead only in free slots, and never more than maxConcurrent at once', () => {
    const s: Shape = {
      steps: [
        { upstream: [], tag: 'a', failures: 0, priority: 0 },
        { upstream: [0], tag: 'b', failures: 0, priority: 0 },
        { upstream: [0], tag: 'b', failures: 0, priority: 0 },
        { upstream: [0], tag: 'b', failures: 0, priority: 0 },
      ],
      maxConcurrent: 2,
      limits: [],
      startAhead: true,
      delay: 0,
    };
    const { slots } = machine(s);
    const first = slots.next(0);
    expect(first.map((a) => a.kind === 'launch' && [a.step.key, a.early])).toEqual([
      ['s0', false],
      ['s1', true],
    ]);
    expect(slots.next(0)).toEqual([]);
  });
});
