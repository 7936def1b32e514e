import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { job, op } from '../src/index.ts';
import { concurrentExecutor } from '../examples/custom-executor.ts';
import { failing, retrying, branching, simple } from './fixtures/jobs.ts';
import { executeJob } from '../src/jobs/run.ts';

describe('the custom executor of docs/executors.md', () => {
  it('is the example file, verbatim', () => {
    const doc = readFileSync(new URL('../docs/executors.md', import.meta.url), 'utf8');
    const source = readFileSync(new URL('../examples/custom-executor.ts', import.meta.url), 'utf8');
    expect(doc).toContain(source);
  });

  it('gives the same outputs, skips and failures as executeInProcess', async () => {
    for (const j of [simple, branching, failing]) {
      const mine = await executeJob(j, concurrentExecutor, null);
      const ref = await j.executeInProcess();
      expect(mine.success).toBe(ref.success);
      expect(mine.stepsNotRun).toEqual(ref.stepsNotRun);
      for (const s of j.steps) {
        const types = (r: typeof ref): string[] => r.eventsForNode(s.key).map((e) => e.type);
        expect(types(mine)).toEqual(types(ref));
        for (const e of ref.eventsForNode(s.key)) if (e.type === 'STEP_OUTPUT') expect(mine.outputForNode(s.key, e.output)).toEqual(e.value);
      }
    }
  });

  it('runs steps at the same time, up to maxConcurrent', async () => {
    let now = 0;
    let peak = 0;
    const wait = op({ name: 'wait' }, async () => {
      peak = Math.max(peak, ++now);
      await new Promise((r) => setTimeout(r, 50));
      now--;
    });
    const j = job({ name: 'waits' }, () => {
      for (let i = 0; i < 6; i++) wait();
    });
    const r = await executeJob(j, concurrentExecutor.configured({ maxConcurrent: 3 }), null);
    expect(r.success).toBe(true);
    expect(peak).toBe(3);
  });

  it('retries through ActiveExecution', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-custom-'));
    try {
      const r = await executeJob(retrying, concurrentExecutor, null, { runConfig: { ops: { flaky: { config: { file: join(dir, 'count'), succeedOn: 1 } } } } });
      expect(r.success).toBe(true);
      expect(r.outputForNode('asks_retry')).toBe('third time');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
