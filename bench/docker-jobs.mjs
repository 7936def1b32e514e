// The jobs of the docker bench: a code location in JavaScript, importing weft's
// job layer as a package (this checkout's own, by its name), as an image would.
import { Definitions, job, op } from 'weftjs/jobs';

const seed = op({ name: 'seed' }, () => 1);
const inc = op({ name: 'inc' }, (_ctx, x) => x + 1);

/** 20 steps, each taking the one before. */
export const chain = job({ name: 'chain' }, () => {
  let x = seed();
  for (let i = 1; i < 20; i++) x = inc(x);
});

/** 20 steps: a seed, and 19 that take it. */
export const fanOut = job({ name: 'fan_out' }, () => {
  const s = seed();
  for (let i = 1; i < 20; i++) inc(s);
});

export default new Definitions({ jobs: [chain, fanOut] });
