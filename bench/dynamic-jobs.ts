/** The jobs of the dynamic outputs bench (a code location: step processes import it). */
import { z } from 'zod';
import { Definitions, dynamicOut, dynamicOutput, job, op } from '../src/index.ts';

const N = 10_000;

const items = op({ name: 'items', out: dynamicOut() }, function* () {
  for (let i = 0; i < N; i++) yield dynamicOutput(`i${i}`, i);
});
const inc = op({ name: 'inc' }, (_ctx, x: number) => x + 1);
const total = op({ name: 'total' }, (_ctx, xs: number[]) => xs.reduce((a, b) => a + b, 0));
/** 10,000 mapped copies of inc and a collect. */
export const mapped10k = job({ name: 'mapped_10k' }, () => {
  total(items().map(inc).collect());
});

const source = op({ name: 'source' }, () => 0);
const totalOf = op({ name: 'total_of' }, (_ctx, ...xs: number[]) => xs.reduce((a, b) => a + b, 0));
/** The same shape, static: a source, 10,000 steps taking from it, one step taking them all. */
export const static10k = job({ name: 'static_10k' }, () => {
  const s = source();
  const outs = [];
  for (let i = 0; i < N; i++) outs.push(inc(s));
  totalOf(...outs);
});

/** Emits `n` keys over `ms` (evenly), each mapped to a step that works `work` ms. */
const streamConfig = z.object({ n: z.number().int().min(0).default(1000), ms: z.number().min(0).default(2000) }).default({ n: 1000, ms: 2000 });
const slowItems = op({ name: 'slow_items', out: dynamicOut(), config: streamConfig }, async function* (ctx) {
  const { n, ms } = ctx.config;
  const t0 = Date.now();
  for (let i = 0; i < n; i++) {
    const due = t0 + (ms * i) / n;
    if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
    yield dynamicOutput(`k${i}`, i);
  }
});
const work = op({ name: 'work', config: z.object({ ms: z.number().min(0).default(10) }).default({ ms: 10 }) }, async (ctx, x: number) => {
  await new Promise((r) => setTimeout(r, ctx.config.ms));
  return x;
});
const count = op({ name: 'count' }, (_ctx, xs: number[]) => xs.length);
export const streaming = job({ name: 'streaming' }, () => {
  count(slowItems().map(work).collect());
});

/** The mapped work of `streaming` as 1,000 static steps: what the executor itself takes for it. */
export const staticWork = job({ name: 'static_work' }, () => {
  for (let i = 0; i < 1000; i++) work(i);
});

export default new Definitions({ jobs: [mapped10k, static10k, streaming, staticWork] });
