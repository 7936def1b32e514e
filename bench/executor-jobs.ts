/** The jobs of the executors bench (a code location: step processes import it). */
import { Definitions, job, op } from '../src/index.ts';

const start = op({ name: 'start' }, () => 0);
const inc = op({ name: 'inc' }, (_ctx, x: number) => x + 1);
const total = op({ name: 'total' }, (_ctx, ...xs: number[]) => xs.reduce((a, b) => a + b, 0));

/** 1,000 steps: a fan-out of 499 from one root, gathered by one step, and a chain of 499 (+1). */
export const wideAndChain = job({ name: 'wide_and_chain' }, () => {
  const root = start();
  const fanned = [];
  for (let i = 0; i < 498; i++) fanned.push(inc(root));
  total(...fanned);
  let x = start();
  for (let i = 0; i < 499; i++) x = inc(x);
});

/** 40 independent steps, for the multiprocess modes. */
export const forty = job({ name: 'forty' }, () => {
  for (let i = 0; i < 40; i++) inc(i);
});

const seed = op({ name: 'seed' }, () => 7);
/** ~64 KiB made from the seed: stays on the worker that made it. */
const transform = op({ name: 'transform' }, (_ctx, s: number, i: number) => new Uint8Array(64 * 1024).fill((s + i) & 0xff));
/** Takes a transform's 64 KiB, returns a small summary. */
const follow = op({ name: 'follow' }, (_ctx, bytes: Uint8Array) => bytes.length + (bytes[0] ?? 0));
const fanIn = op({ name: 'fan_in' }, (_ctx, ...xs: number[]) => xs.reduce((a, b) => a + b, 0));

/** 1,002 steps for the cluster executor: a seed, 500 transforms of ~64 KiB each, a follower per transform, one fan-in. */
export const fanOut = job({ name: 'fan_out' }, () => {
  const s = seed();
  const summaries = [];
  for (let i = 0; i < 500; i++) summaries.push(follow(transform(s, i)));
  fanIn(...summaries);
});

export default new Definitions({ jobs: [wideAndChain, forty, fanOut] });
