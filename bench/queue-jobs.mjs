// The jobs of the queue bench: a code location in JavaScript that queue workers import.
import { Definitions, job, op } from 'weftjs/jobs';

const seed = op({ name: 'seed' }, () => 1);
const inc = op({ name: 'inc' }, (_ctx, x) => x + 1);
const total = op({ name: 'total' }, (_ctx, ...xs) => xs.reduce((a, b) => a + b, 0));

/** 1,000 steps: a seed, 998 steps that take it, one that takes them all. */
export const fanOutIn = job({ name: 'fan_out_in' }, () => {
  const s = seed();
  const xs = [];
  for (let i = 0; i < 998; i++) xs.push(inc(s));
  total(...xs);
});

/** 100 steps, each taking the one before: each starts as soon as the one before ends. */
export const chain = job({ name: 'chain' }, () => {
  let x = seed();
  for (let i = 1; i < 100; i++) x = inc(x);
});

export default new Definitions({ jobs: [fanOutIn, chain] });
