/**
 * The step-delegating seam, with the documented subprocess handler
 * (examples/subprocess-executor.ts): every step attempt is a real `weft step`
 * process that connects back to the run's coordinator over WebSocket.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { clusterExecutor, inProcessExecutor, multiprocessExecutor, type ExecutorDefinition, type JobDefinition, type RunEvent, type StepHandler } from '../src/index.ts';
import { executeJob } from '../src/jobs/run.ts';
import { encode } from '../src/protocol/codec.ts';
import { unpackStepArgs, STEP_ARGS_ENV, type StepArgs } from '../src/jobs/step/spec.ts';
import { stepDelegatingConfig, stepDelegatingExecutor } from '../src/jobs/delegating/executor.ts';
import { subprocessExecutor, subprocessHandler } from '../examples/subprocess-executor.ts';
import defs from './fixtures/step-jobs.ts';
import bundledDefs from './fixtures/bundled-jobs.ts';
import { buildLocationBundle } from '../src/jobs/step/bundle.ts';
import { bundleDir, prebuiltLocation } from '../src/jobs/step/prebuilt.ts';
import { alive } from './helpers/util.ts';
import { expectSameAsInProcess } from './helpers/in-process.ts';

const MODULE = new URL('./fixtures/step-jobs.ts', import.meta.url).href;
const dir = mkdtempSync(join(tmpdir(), 'weft-delegating-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(name: string, exec: ExecutorDefinition, opts: Parameters<typeof executeJob>[3] = {}): ReturnType<typeof executeJob> {
  return executeJob(defs.getJob(name), exec, { module: MODULE, jobName: name }, opts);
}

/** The subprocess executor with some handler methods wrapped (the rest as the example has them). */
function wrapped(name: string, over: (inner: StepHandler) => Partial<StepHandler>): ExecutorDefinition {
  return stepDelegatingExecutor({
    name,
    configSchema: stepDelegatingConfig,
    handler: () => {
      const inner = subprocessHandler();
      return { ...inner, ...over(inner) };
    },
  }) as ExecutorDefinition;
}

/** The subprocess executor, keeping the arguments of the last step it launched (its coordinator's address, its token). */
function spying(name: string): { spy: ExecutorDefinition; args: () => StepArgs | null } {
  let last: StepArgs | null = null;
  const spy = wrapped(name, (inner) => ({
    async launch(ctx) {
      last = unpackStepArgs((await ctx.weftStep()).env[STEP_ARGS_ENV] as string) as StepArgs;
      await inner.launch(ctx);
    },
  }));
  return { spy, args: () => last };
}

function stepTypes(r: { eventsForNode(k: string): RunEvent[] }, key: string): string[] {
  return r.eventsForNode(key).map((e) => e.type);
}

describe('the step-delegating executor (subprocess handler, weft step over WebSocket)', () => {
  it('gives the outputs, skips, failures and step events executeInProcess gives', async () => {
    for (const name of ['simple', 'branching', 'failing', 'logging']) {
      const job: JobDefinition = defs.getJob(name);
      const mine = await run(name, subprocessExecutor);
      await expectSameAsInProcess(mine, job);
      // Every step ran in a process of its own.
      const pids = job.steps.map((s) => mine.eventsForNode(s.key).find((e) => e.type === 'STEP_START')?.pid).filter((p) => p !== undefined);
      expect(new Set([...pids, process.pid]).size).toBe(pids.length + 1);
    }
  });

  it('retries per the op policy and RetryRequested in new processes', async () => {
    const r = await run('retrying', subprocessExecutor, { runConfig: { ops: { flaky: { config: { file: join(dir, 'flaky'), succeedOn: 1 } } } } });
    expect(r.success).toBe(true);
    expect(r.outputForNode('asks_retry')).toBe('third time');
    const starts = r.eventsForNode('flaky').filter((e) => e.type === 'STEP_START').map((e) => e.pid);
    expect(starts).toHaveLength(2);
    expect(starts[0]).not.toBe(starts[1]);
  });

  it('streams a LOG while the step is still running', async () => {
    const go = join(dir, 'go-log');
    const r = await run('long_step', subprocessExecutor, {
      runConfig: { ops: { waits_for_go: { config: { file: go } } } },
      // The step cannot end before this file exists: the log came while it ran.
      onEvent: (ev) => ev.type === 'LOG' && writeFileSync(go, 'go'),
    });
    expect(r.success).toBe(true);
    expect(stepTypes(r, 'waits_for_go')).toEqual(['STEP_START', 'LOG', 'STEP_OUTPUT', 'STEP_SUCCESS']);
  });

  it('kill -9 of a step process fails the attempt with the reason, and the retry policy reruns it', async () => {
    const r = await run('killable', subprocessExecutor.configured({ healthCheckIntervalSeconds: 0.5 }), {
      onEvent: (ev) => {
        if (ev.type === 'LOG' && ev.pid) process.kill(ev.pid, 'SIGKILL');
      },
    });
    expect(r.success).toBe(true);
    const retry = r.eventsForNode('killable').find((e) => e.type === 'STEP_UP_FOR_RETRY');
    expect(retry?.error?.name).toBe('StepHealthError');
    expect(retry?.error?.message).toMatch(/was killed by SIGKILL/);
    expect((r.outputForNode('killable') as { attempt: number }).attempt).toBe(1);
  });

  it('cancelling the run stops every running step and leaves no process', async () => {
    const controller = new AbortController();
    const pids: number[] = [];
    const r = await run('cancellable', subprocessExecutor, {
      signal: controller.signal,
      onEvent: (ev) => {
        if (ev.type === 'LOG' && ev.pid) pids.push(ev.pid);
        if (pids.length === 2) controller.abort();
      },
    });
    expect(r.canceled).toBe(true);
    expect(r.allEvents.at(-1)?.type).toBe('RUN_CANCELED');
    expect(r.failures.map((f) => f.error.remoteName)).toEqual(['CancelledError', 'CancelledError']);
    for (const p of pids) expect(alive(p)).toBe(false);
  });

  it('closes a connection without the run token, or sending a malformed frame, and the run goes on', async () => {
    const { spy, args } = spying('spy');
    const go = join(dir, 'go-bad');
    const closes: number[] = [];
    const knock = (frame: Uint8Array | string): Promise<void> =>
      new Promise((resolve) => {
        const ws = new WebSocket((args() as StepArgs).coordinator);
        ws.on('open', () => ws.send(frame));
        ws.on('close', (code) => {
          closes.push(code);
          resolve();
        });
      });
    const r = await run('long_step', spy, {
      runConfig: { ops: { waits_for_go: { config: { file: go } } } },
      onEvent: (ev) => {
        if (ev.type !== 'LOG' || !args()) return;
        const a = args() as StepArgs;
        void (async () => {
          await knock(encode({ t: 'hello', runId: a.spec.runId, stepKey: a.spec.stepKey, attempt: 0, token: 'not-the-token', pid: 1, host: 'x' }));
          await knock(encode({ t: 'hello', runId: a.spec.runId, stepKey: a.spec.stepKey, attempt: 0, token: a.token, pid: 1, host: 'x' }));
          await knock(new Uint8Array([0xc1, 0xc1, 0xc1]));
          await knock('{"t":"hello"}');
          writeFileSync(go, 'go');
        })();
      },
    });
    // Wrong token, the right token a second time, a malformed frame, a text frame: each closed, nothing else.
    expect(closes).toEqual([1008, 1008, 1007, 1003]);
    expect(r.success).toBe(true);
    expect(r.allEvents.filter((e) => e.type === 'ENGINE_EVENT' && /refused a step connection/.test(e.message))).toHaveLength(2);
  });
});

describe('strangers at the coordinator', () => {
  it('a forged step key (newlines, 60 KB) shows as one escaped, cut line; 30 refusals make at most 5 lines and a count', async () => {
    const { spy, args } = spying('spy_forged');
    const go = join(dir, 'go-forged');
    const knock = (stepKey: string): Promise<void> =>
      new Promise((resolve) => {
        const ws = new WebSocket((args() as StepArgs).coordinator);
        ws.on('open', () => ws.send(encode({ t: 'hello', runId: (args() as StepArgs).spec.runId, stepKey, attempt: 0, token: 'forged', pid: 1, host: 'x' })));
        ws.on('close', () => resolve());
        ws.on('error', () => resolve());
      });
    const forged = `x\n12:00:00.000 RUN_SUCCESS run forged succeeded\n${'a'.repeat(60_000)}`;
    const r = await run('long_step', spy, {
      runConfig: { ops: { waits_for_go: { config: { file: go } } } },
      onEvent: (ev) => {
        if (ev.type !== 'LOG' || !args()) return;
        void (async () => {
          await knock(forged);
          for (let i = 0; i < 29; i++) await knock(`stranger-${i}`);
          writeFileSync(go, 'go');
        })();
      },
    });
    expect(r.success).toBe(true);
    const refused = r.allEvents.filter((e) => e.type === 'ENGINE_EVENT' && /step connection/.test(e.message)).map((e) => e.message);
    // The first refusal: the forged key on one line, its newlines escaped, cut to 120 characters.
    expect(refused[0]).toMatch(/^refused a step connection: no step x\\n12:00:00\.000 RUN_SUCCESS run forged succeeded\\na+\.\.\. \(\d+ more characters\) attempt 0/);
    expect(refused[0]?.includes('\n')).toBe(false);
    expect(refused[0]?.length).toBeLessThan(400);
    // Then at most 4 more, and one line for the rest.
    expect(refused.filter((m) => m.startsWith('refused a step connection'))).toHaveLength(5);
    expect(refused.at(-1)).toBe('25 more step connections refused in 10 s, not logged one by one');
    expect(r.allEvents.some((e) => e.message.includes('\n12:00:00.000 RUN_SUCCESS'))).toBe(false);
  }, 60_000);
});

describe('starting steps ahead', () => {
  /** The subprocess executor, recording when each step was launched and how each attempt ended. */
  function recording(): { exec: ExecutorDefinition; launched: Map<string, number>; terminated: Map<string, boolean> } {
    const launched = new Map<string, number>();
    const terminated = new Map<string, boolean>();
    const exec = wrapped('recording', (inner) => ({
      async launch(ctx) {
        launched.set(ctx.stepKey, Date.now());
        await inner.launch(ctx);
      },
      async terminate(ctx) {
        terminated.set(ctx.stepKey, ctx.finished);
        await inner.terminate(ctx);
      },
    }));
    return { exec, launched, terminated };
  }

  it("starts a step's process while its upstream steps run, and gives it its inputs once they exist", async () => {
    const { exec, launched } = recording();
    const go = join(dir, 'go-ahead');
    let upstreamEnded = 0;
    const r = await run('survives', exec, {
      runConfig: { ops: { waits_for_go: { config: { file: go } } } },
      onEvent: (ev) => {
        if (ev.type === 'LOG') writeFileSync(go, 'go');
        if (ev.type === 'STEP_SUCCESS' && ev.stepKey === 'waits_for_go') upstreamEnded = Date.now();
      },
    });
    expect(r.success).toBe(true);
    expect(r.outputForNode('plus_total')).toBe((r.outputForNode('waits_for_go') as number) + 45);
    expect(launched.get('plus_total')).toBeLessThan(upstreamEnded);
  });

  it('stops a step started ahead whose upstream step failed, unseen: no events, no process', async () => {
    const { exec, launched, terminated } = recording();
    const r = await run('failing', exec);
    expect(r.success).toBe(false);
    expect(r.stepsNotRun).toContain('add_one');
    expect(launched.has('add_one')).toBe(true);
    expect(terminated.get('add_one')).toBe(false);
    expect(r.eventsForNode('add_one')).toEqual([]);
  });

  it('drops a step started ahead whose process died before its inputs existed, and starts it again when they do', async () => {
    let launches = 0;
    let reported = false;
    const exec = wrapped('dies_ahead', (inner) => ({
      async launch(ctx) {
        if (ctx.stepKey === 'plus_total') launches++;
        await inner.launch(ctx);
      },
      // The first process started ahead for plus_total is reported gone, as a container that died would be.
      async checkHealth(ctx) {
        if (ctx.stepKey === 'plus_total' && !reported) {
          reported = true;
          return { healthy: false, reason: 'its container is gone' };
        }
        return inner.checkHealth(ctx);
      },
    }));
    const go = join(dir, 'go-dies-ahead');
    const r = await run('survives', exec.configured({ healthCheckIntervalSeconds: 0.1 }) as ExecutorDefinition, {
      runConfig: { ops: { waits_for_go: { config: { file: go } } } },
      onEvent: (ev) => {
        if (ev.type === 'ENGINE_EVENT' && /started ahead for step plus_total is gone/.test(ev.message)) writeFileSync(go, 'go');
      },
    });
    expect(r.success).toBe(true);
    expect(launches).toBe(2);
    expect(r.eventsForNode('plus_total').map((e) => e.type)).toEqual(['STEP_START', 'STEP_OUTPUT', 'STEP_SUCCESS']);
  });

  it.each([1, 2])('a delayed retry below steps started ahead goes on with %i slot(s)', async (n) => {
    await expectSameAsInProcess(await run('retry_fan', subprocessExecutor.configured({ maxConcurrent: n }) as ExecutorDefinition), defs.getJob('retry_fan'));
  });

  it('starts nothing ahead with startAhead: false', async () => {
    const { exec, launched } = recording();
    const r = await run('failing', exec.configured({ startAhead: false }) as ExecutorDefinition);
    expect(r.success).toBe(false);
    expect(launched.has('add_one')).toBe(false);
  });
});

describe('prebuilt code locations (weft bundle)', () => {
  const BUNDLED = new URL('./fixtures/bundled-jobs.ts', import.meta.url).href;
  const manifest = join(bundleDir(BUNDLED), 'locations.json');
  afterAll(() => rmSync(manifest, { force: true }));

  it('weft step runs a code location from its prebuilt bundle while its sources are unchanged, else from the module', async () => {
    const runWhere = async (): Promise<string> => {
      const r = await executeJob(bundledDefs.getJob('where_code'), subprocessExecutor, { module: BUNDLED, jobName: 'where_code' });
      expect(r.success).toBe(true);
      return r.outputForNode('code_file') as string;
    };
    rmSync(manifest, { force: true });
    expect(prebuiltLocation(BUNDLED)).toBeNull();
    expect(await runWhere()).toBe(BUNDLED);

    const file = await buildLocationBundle(BUNDLED);
    expect(prebuiltLocation(BUNDLED)).toBe(pathToFileURL(file).href);
    expect(await runWhere()).toBe(pathToFileURL(file).href);

    // A source touched since: the bundle is not used.
    const source = fileURLToPath(BUNDLED);
    const later = new Date(Date.now() + 5000);
    utimesSync(source, later, later);
    expect(prebuiltLocation(BUNDLED)).toBeNull();
    expect(await runWhere()).toBe(BUNDLED);
  });
});

describe('op tag weft/priority', () => {
  const order = (r: { allEvents: readonly RunEvent[] }): (string | null)[] => r.allEvents.filter((e) => e.type === 'STEP_START').map((e) => e.stepKey);
  it.each([
    ['in-process', inProcessExecutor],
    ['multiprocess', multiprocessExecutor.configured({ maxConcurrent: 1 })],
    ['subprocess (step-delegating)', subprocessExecutor.configured({ maxConcurrent: 1 })],
    ['cluster', clusterExecutor.configured({ cluster: { local: { workers: 1, threadsPerWorker: 1 } } })],
  ] as [string, ExecutorDefinition][])('orders ready steps, higher first, in the %s executor', async (_name, exec) => {
    const r = await run('prioritized', exec);
    expect(r.success).toBe(true);
    expect(order(r)).toEqual(['high', 'mid', 'low']);
  });
});

describe('the documented custom handler', () => {
  it('is the example file, verbatim, in docs/executors.md', () => {
    const doc = readFileSync(new URL('../docs/executors.md', import.meta.url), 'utf8');
    const source = readFileSync(new URL('../examples/subprocess-executor.ts', import.meta.url), 'utf8');
    expect(doc).toContain(source);
    expect(existsSync(new URL('../examples/subprocess-executor.ts', import.meta.url))).toBe(true);
  });
});
