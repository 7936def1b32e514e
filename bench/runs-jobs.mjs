// The jobs of the run storage bench: a code location as a user's would be,
// plain JavaScript importing the built package (npm run build first), so
// that `weft runs reexecute` rebuilds it as it would in production.
import { existsSync } from 'node:fs';
import { Definitions, inProcessExecutor, job, op } from '../dist/jobs/index.js';

const start = op({ name: 'start' }, () => 0);
const inc = op({ name: 'inc' }, (_ctx, x) => x + 1);
/** Fails while WEFT_BENCH_FLAG names a file that exists. */
const last = op({ name: 'last' }, (_ctx, x) => {
  const flag = process.env['WEFT_BENCH_FLAG'];
  if (flag && existsSync(flag)) throw new Error(`the flag ${flag} is up`);
  return x;
});

/** 1,000 steps in a chain; the last one fails while the flag is up. */
export const failsLast = job({ name: 'fails_last', executorDef: inProcessExecutor }, () => {
  let x = start();
  for (let i = 0; i < 998; i++) x = inc(x);
  last(x);
});

export default new Definitions({ jobs: [failsLast] });
