/**
 * A Dagster-style code location: ops wired into jobs, assets, and the
 * Definitions object that `weft run` and step processes load.
 *
 *   npx weft list examples/jobs.ts
 *   npx weft run examples/jobs.ts --job daily_report
 *   npx weft run examples/jobs.ts --job daily_report --config examples/daily-report.json --json
 *   npx weft run examples/jobs.ts --job all_assets
 */
import { z } from 'zod';
import { asset, defineAssetJob, Definitions, job, multiprocessExecutor, op, out } from '../src/index.ts';

interface Order {
  region: string;
  amount: number;
}

const load = op({ name: 'load_orders', config: z.object({ days: z.number().int().min(1).default(3) }).default({ days: 3 }) }, (ctx) => {
  const orders: Order[] = [];
  for (let d = 0; d < ctx.config.days; d++) for (let i = 0; i < 4; i++) orders.push({ region: ['eu', 'us'][i % 2] as string, amount: 10 * (d + 1) + i });
  ctx.log.info(`loaded ${orders.length} orders`, { days: ctx.config.days });
  return orders;
});

const splitRegions = op({ name: 'split_regions', outs: { eu: out(), us: out(), other: out({ optional: true }) } }, (_ctx, orders: Order[]) => {
  const by = (r: string): Order[] => orders.filter((o) => o.region === r);
  const other = orders.filter((o) => o.region !== 'eu' && o.region !== 'us');
  return other.length > 0 ? { eu: by('eu'), us: by('us'), other } : { eu: by('eu'), us: by('us') };
});

const total = op({ name: 'total', retryPolicy: { maxRetries: 2, delay: 0.1, backoff: 'exponential', jitter: 'plusMinus' } }, (_ctx, orders: Order[]) => orders.reduce((s, o) => s + o.amount, 0));

const report = op({ name: 'report', tags: { kind: 'report' } }, (ctx, eu: number, us: number) => {
  const text = `EU ${eu}, US ${us}, all ${eu + us}`;
  ctx.log.info(text);
  return text;
});

/** Runs with the default executor: each step in its own process. */
export const dailyReport = job({ name: 'daily_report' }, () => {
  const { eu, us, other } = splitRegions(load());
  report(total(eu), total(us));
  total(other); // skipped when there are no orders from other regions
});

/** The same wiring, with processes reused between steps. */
export const dailyReportWarm = job({ name: 'daily_report_warm', executorDef: multiprocessExecutor.configured({ mode: 'warm', maxConcurrent: 2 }) }, () => {
  const { eu, us } = splitRegions(load());
  report(total(eu), total(us));
});

const rawOrders = asset({ name: 'raw_orders' }, (): Order[] => [
  { region: 'eu', amount: 5 },
  { region: 'us', amount: 7 },
]);
const revenue = asset({ name: 'revenue', deps: [rawOrders] }, (_ctx, orders: Order[]) => orders.reduce((s, o) => s + o.amount, 0));

export default new Definitions({
  assets: [rawOrders, revenue],
  jobs: [dailyReport, dailyReportWarm, defineAssetJob('all_assets', { selection: '*' })],
});
