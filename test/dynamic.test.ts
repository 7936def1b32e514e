/**
 * Dynamic outputs (Dagster's DynamicOut): an op emits items under mapping
 * keys, `.map()` runs a copy of its ops per item as steps `op[key]`,
 * `.collect()` gathers their results in emission order. In process, and in
 * step processes of their own, where a copy starts while the op that emits
 * its item still runs.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dynamicOut, dynamicOutput, graph, job, op, out, DefinitionError, type ExecutorDefinition, type JobExecutionResult } from '../src/index.ts';
import { multiprocessExecutor } from '../src/jobs/executors/multiprocess.ts';
import { executeJob } from '../src/jobs/run.ts';
import defs, { badKeys, failingFanOut, mapped, mendMapped, nested, twoOutputs } from './fixtures/dynamic-jobs.ts';
import { Instance } from '../src/runs/instance.ts';
import { reexecute } from '../src/runs/reexecute.ts';
import { expectCopiesWhileFanOutRuns, expectMendedCopies } from './helpers/dynamic.ts';
import { ActiveExecution, buildPlan } from '../src/jobs/plan.ts';
import { event } from '../src/jobs/events.ts';

const MODULE = new URL('./fixtures/dynamic-jobs.ts', import.meta.url).href;
const dir = mkdtempSync(join(tmpdir(), 'weft-dynamic-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const multiprocess = multiprocessExecutor.configured({ maxConcurrent: 4 }) as ExecutorDefinition;
function inProcesses(name: string, opts: Parameters<typeof executeJob>[3] = {}): Promise<JobExecutionResult> {
  return executeJob(defs.getJob(name), multiprocess, { module: MODULE, jobName: name }, opts);
}

const started = (r: JobExecutionResult): string[] => r.allEvents.filter((e) => e.type === 'STEP_START').map((e) => e.stepKey as string);

describe('dynamic outputs in process', () => {
  it('maps each item through two ops, with a static input, and collects the results in emission order', async () => {
    const r = await mapped.executeInProcess();
    expect(r.success).toBe(true);
    expect(r.outputForNode('total')).toEqual({ sum: 314, xs: [101, 104, 109] });
    expect(started(r)).toEqual(expect.arrayContaining(['letters', 'square[k0]', 'square[k1]', 'square[k2]', 'plus[k0]', 'plus[k2]', 'total']));
    expect(r.outputForNode('square[k1]')).toBe(4);
    expect(r.outputForNode('letters', 'result[k2]')).toBe(3);
  });

  it('an empty dynamic output: no copies run, and collect gets []', async () => {
    const r = await mapped.executeInProcess({ runConfig: { ops: { letters: { config: { n: 0 } } } } });
    expect(r.success).toBe(true);
    expect(r.outputForNode('total')).toEqual({ sum: 0, xs: [] });
    expect(started(r).filter((k) => k.includes('['))).toEqual([]);
  });

  it('nested maps: a copy emits items of its own, mapped and collected inside the outer map', async () => {
    const r = await nested.executeInProcess();
    expect(r.success).toBe(true);
    expect(r.outputForNode('leaf[k1][j1]')).toBe(21.5);
    expect(r.outputForNode('sum_of[k2]')).toBe(94.5);
    expect(r.outputForNode('total')).toEqual({ sum: 147, xs: [10.5, 42, 94.5] });
  });

  it('two dynamic outputs and a static one, emitted with ctx.emit', async () => {
    const r = await twoOutputs.executeInProcess();
    expect(r.success).toBe(true);
    expect(r.outputForNode('both')).toEqual({ odd: [-1, -3, -5], even: [2, 4], count: 5 });
  });

  it("an op may take its context apart: emit, log and signal work on their own, and stay the same through the attempt", async () => {
    const seen: boolean[] = [];
    const parts = op({ name: 'parts', out: dynamicOut() }, (ctx) => {
      const { emit, log, signal, stepKey, attempt } = ctx;
      seen.push(ctx.emit === emit, ctx.log === log, ctx.signal === signal, signal.aborted === false);
      log.info(`${stepKey} attempt ${attempt}`, { n: 2 });
      emit('a', 1);
      emit('b', 2);
    });
    const double = op({ name: 'double' }, (_ctx, x: number) => x * 2);
    const sum = op({ name: 'sum' }, (_ctx, xs: number[]) => xs.reduce((a, b) => a + b, 0));
    const r = await job({ name: 'parts_job' }, () => sum(parts().map(double).collect())).executeInProcess();
    expect(r.success).toBe(true);
    expect(r.outputForNode('sum')).toBe(6);
    expect(seen).toEqual([true, true, true, true]);
    expect(r.allEvents.filter((e) => e.type === 'LOG').map((e) => [e.message, e.data, e.attempt, e.level])).toEqual([['parts attempt 0', { n: 2 }, 0, 'info']]);
  });

  it.each([
    ['no-dash', /mapping key "no-dash" is not valid: use letters, digits and _/],
    ['ok', /emitted mapping key ok twice on output result/],
  ])('a mapping key %j fails the step that emits it, naming it', async (key, why) => {
    const r = await badKeys.executeInProcess({ runConfig: { ops: { bad_key: { config: { key } } } } });
    expect(r.success).toBe(false);
    expect(r.failures.map((f) => f.stepKey)).toEqual(['bad_key']);
    expect(r.failures[0]?.error.message).toMatch(why);
    expect(r.stepsNotRun).toContain('total');
  });

  it('a fan-out op that fails: the run fails naming it, and collect does not run', async () => {
    const r = await failingFanOut.executeInProcess();
    expect(r.success).toBe(false);
    expect(r.failures.map((f) => f.stepKey)).toEqual(['fails_late']);
    expect(r.failures[0]?.error.message).toMatch(/the listing broke after two items/);
    expect(started(r)).not.toContain('total');
  });

  it('wiring mistakes are named when the job is defined', () => {
    const fan = op({ name: 'fan', out: dynamicOut() }, function* () {
      yield dynamicOutput('a', 1);
    });
    const use = op({ name: 'use' }, (_ctx, x: unknown) => x);
    expect(() => job({ name: 'unmapped' }, () => void use(fan()))).toThrow(/is dynamic output result of step fan: map over it/);
    expect(() =>
      job({ name: 'leaks' }, () => {
        let inner: unknown;
        fan().map((x) => (inner = use(x)));
        use(inner);
      }),
    ).toThrow(/step use, which is mapped: outside its \.map\(\), use \.collect\(\)/);
    expect(() => job({ name: 'uncollected' }, () => void use(fan().map((x) => use(x))))).toThrow(/outputs of mapped steps: use \.collect\(\)/);
    expect(() => op({ name: 'both_ways', out: dynamicOut(), outs: { a: dynamicOut() } }, () => 1)).toThrow(DefinitionError);
  });
});

describe('collectors handed out early (the cluster executor submits them before the copies they collect end)', () => {
  const ran = (active: ActiveExecution, key: string, outputs: string[] = ['result']): void => {
    for (const output of outputs) active.handle(event('STEP_OUTPUT', 'r', key, '', { output }));
    active.handle(event('STEP_SUCCESS', 'r', key, ''));
  };

  it("once the fan-out succeeds, taking every copy's output in emission order; ready in its turn as ever", () => {
    const active = new ActiveExecution(buildPlan('r', mapped, new Map()));
    expect(active.ready().map((s) => s.key).sort()).toEqual(['base', 'letters']);
    ran(active, 'base');
    ran(active, 'letters', ['result[k0]', 'result[k2]', 'result[k1]']);
    const [early, ...more] = active.takeEarlyCollectors();
    expect(more).toEqual([]);
    expect(early?.key).toBe('total');
    expect(early?.node.inputs).toEqual([{ kind: 'list', items: ['k0', 'k2', 'k1'].map((k) => ({ stepKey: `plus[${k}]`, output: 'result' })) }]);
    expect(active.takeEarlyCollectors()).toEqual([]);
    for (const k of ['k0', 'k2', 'k1']) ran(active, `square[${k}]`);
    for (const k of ['k0', 'k2']) ran(active, `plus[${k}]`);
    expect(active.ready().map((s) => s.key)).not.toContain('total');
    ran(active, 'plus[k1]');
    expect(active.ready().map((s) => s.key)).toEqual(['total']);
  });

  it('never where a step may be skipped: a job with an optional output, or a re-execution', () => {
    const maybe = op({ name: 'maybe', outs: { a: out(), b: out({ optional: true }) } }, () => ({ a: 1 }));
    const items = op({ name: 'items', out: dynamicOut() }, function* () {
      yield dynamicOutput('x', 1);
    });
    const add = op({ name: 'add' }, (_ctx, x: number, y: number) => x + y);
    const all = op({ name: 'all' }, (_ctx, xs: number[]) => xs);
    const withOptional = job({ name: 'with_optional' }, () => {
      const { a } = maybe();
      all(items().map((x) => add(x, a)).collect());
    });
    const active = new ActiveExecution(buildPlan('r', withOptional, new Map()));
    ran(active, 'maybe', ['a']);
    ran(active, 'items', ['result[x]']);
    expect(active.takeEarlyCollectors()).toEqual([]);
    const again = new ActiveExecution(buildPlan('r', mapped, new Map(), { stepKeys: ['letters', 'square[k0]', 'plus[k0]', 'total'], loaded: [{ stepKey: 'base', output: 'result' }] }));
    ran(again, 'letters', ['result[k0]']);
    expect(again.takeEarlyCollectors()).toEqual([]);
  });
});

describe('dynamic outputs in step processes (the multiprocess executor)', () => {
  it.each([
    ['mapped', 'total'],
    ['nested', 'total'],
    ['two_outputs', 'both'],
  ])('%s gives what executeInProcess gives', async (name, last) => {
    const [here, there] = await Promise.all([defs.getJob(name).executeInProcess(), inProcesses(name)]);
    expect(there.success).toBe(true);
    expect(there.outputForNode(last)).toEqual(here.outputForNode(last));
    expect(started(there).sort()).toEqual(started(here).sort());
  });

  it('copies start while the op emitting their items still runs; when it then fails, the copies that ran stay, and collect does not run', async () => {
    await expectCopiesWhileFanOutRuns(multiprocess, join(dir, 'fail-now'));
  }, 60_000);
});

describe('re-execution of a run with mapped steps', () => {
  it.each([
    ['in process', null],
    ['in step processes', multiprocess],
  ] as const)('from failure, %s: only the failed copy and what depends on it run again, with the first run\'s mapping keys; the rest load', async (_how, exec) => {
    const instance = await Instance.open({ home: join(dir, `home-${exec ? 'mp' : 'ip'}`) });
    try {
      const { again } = await expectMendedCopies(instance, join(dir, `mend-${exec ? 'mp' : 'ip'}`), exec);
      if (exec) return;
      // A step selection may name a copy: of the re-execution too, whose items came from the first run.
      const third = await reexecute(instance, again.runId, { stepSelection: ['plus[k2]+'], job: mendMapped });
      expect(started(third).sort()).toEqual(['plus[k2]', 'total']);
      expect(third.outputForNode('total')).toEqual({ sum: 360, xs: [110, 120, 130] });
      await expect(reexecute(instance, again.runId, { stepSelection: ['plus[k9]'], job: mendMapped })).rejects.toThrow(/names no copy that run .* made \(its copies: /);
      await expect(reexecute(instance, again.runId, { stepSelection: ['*plus[k2]'], job: mendMapped })).rejects.toThrow(/takes no upstream steps/);
    } finally {
      await instance.close();
    }
  }, 60_000);
});

describe('op selection', () => {
  it('a run of an op selection re-executes from failure within it', async () => {
    const instance = await Instance.open({ home: join(dir, 'home-selection') });
    try {
      const flag = join(dir, 'mend-selection');
      const runConfig = { ops: { fragile: { config: { flag } }, plus: { inputs: { input1: 7 } } } };
      const first = await mendMapped.executeInProcess({ instance, outputStore: instance.outputStore, runConfig, opSelection: ['letters*'] });
      expect(first.failures.map((f) => f.stepKey)).toEqual(['fragile[k1]']);
      writeFileSync(flag, 'ready');
      const again = await reexecute(instance, first.runId, { fromFailure: true, job: mendMapped });
      expect(again.success).toBe(true);
      // base, left out of the selection, still never runs; plus takes its input from the run config as before.
      expect(started(again).sort()).toEqual(['fragile[k1]', 'plus[k1]', 'total']);
      expect(again.outputForNode('total')).toEqual({ sum: 81, xs: [17, 27, 37] });
    } finally {
      await instance.close();
    }
  });


  it('runs the selected steps; an input from a step left out comes from run config, and one not given is named', async () => {
    const r = await mapped.executeInProcess({ opSelection: ['letters*'], runConfig: { ops: { plus: { inputs: { input1: 1000 } } } } });
    expect(r.success).toBe(true);
    expect(started(r)).not.toContain('base');
    expect(r.outputForNode('total')).toEqual({ sum: 3014, xs: [1001, 1004, 1009] });
    await expect(mapped.executeInProcess({ opSelection: ['letters*'] })).rejects.toThrow(/ops\.plus\.inputs\.input1: step plus takes input input1 from step base, which the op selection leaves out: give its value here/);
  });

  it('a selection that names no step, or a mapped step without its source, gets a clear error', async () => {
    await expect(mapped.executeInProcess({ opSelection: ['nope'] })).rejects.toThrow(/names no step of job mapped/);
    await expect(mapped.executeInProcess({ opSelection: ['square'] })).rejects.toThrow(/takes mapped step square without step letters, whose items it maps over: select that step too \(\*square\)/);
  });

  it('a graph made into a job of some of its ops (toJob({ opSelection })); a launch may name other steps', async () => {
    const one = op({ name: 'one' }, () => 1);
    const double = op({ name: 'double' }, (_ctx, x: number) => x * 2);
    const addTen = op({ name: 'add_ten' }, (_ctx, x: number) => x + 10);
    const chain = graph({ name: 'chain' }, () => void addTen(double(one())));
    const tail = chain.toJob({ name: 'tail', opSelection: ['double*'] });
    const r = await tail.executeInProcess({ runConfig: { ops: { double: { inputs: { input0: 5 } } } } });
    expect(started(r)).toEqual(['double', 'add_ten']);
    expect(r.outputForNode('add_ten')).toBe(20);
    expect(started(await tail.executeInProcess({ opSelection: ['*add_ten'] }))).toEqual(['one', 'double', 'add_ten']);
  });

  it('in step processes too: each cuts the job as the launcher did', async () => {
    const r = await inProcesses('mapped', { opSelection: ['letters*'], runConfig: { ops: { plus: { inputs: { input1: 1 } } } } });
    expect(r.success).toBe(true);
    expect(r.outputForNode('total')).toEqual({ sum: 17, xs: [2, 5, 10] });
  }, 60_000);
});
