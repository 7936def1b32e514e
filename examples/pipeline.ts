/**
 * A data pipeline on the weft cluster: generate partitions of sales data,
 * clean and summarize each partition where it was made, aggregate the
 * summaries, and write a report. Each partition's rows stay on the worker
 * that generated them; only the small summaries move.
 *
 *   npx weft cluster                                                          # terminal 1
 *   npx weft run examples/pipeline.ts --job sales_report --address ws://127.0.0.1:8786   # terminal 2
 *   npx weft run examples/pipeline.ts --job sales_report                      # or: a cluster of its own for the run
 */
import { z } from 'zod';
import { clusterExecutor, Definitions, job, op } from '../src/index.ts';

interface Sale {
  day: number;
  region: string;
  product: string;
  quantity: number;
  price: number;
}

interface Summary {
  partition: number;
  rows: number;
  dropped: number;
  revenueByRegion: Record<string, number>;
  unitsByProduct: Record<string, number>;
}

const REGIONS = ['eu', 'us', 'apac', 'latam'];
const PRODUCTS = ['widget', 'gadget', 'gizmo', 'doohickey', 'sprocket'];
const PARTITIONS = 16;

/** A small deterministic generator, so that every run reports the same figures. */
function random(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

const generate = op({ name: 'generate', config: z.object({ rowsPerPartition: z.number().int().min(1).max(1_000_000).default(50_000) }).default({ rowsPerPartition: 50_000 }) }, (ctx, partition: number) => {
  const rand = random(partition * 7919 + 17);
  const rows: Sale[] = [];
  for (let i = 0; i < ctx.config.rowsPerPartition; i++) {
    rows.push({
      day: partition,
      region: REGIONS[Math.floor(rand() * REGIONS.length)] as string,
      product: PRODUCTS[Math.floor(rand() * PRODUCTS.length)] as string,
      // About 1 row in 200 is bad data: cleaned out downstream.
      quantity: rand() < 0.005 ? -1 : 1 + Math.floor(rand() * 9),
      price: Math.round((5 + rand() * 95) * 100) / 100,
    });
  }
  ctx.log.info(`partition ${partition}: generated ${rows.length} rows`);
  return rows;
});

const summarize = op({ name: 'summarize' }, (ctx, rows: Sale[]) => {
  const clean = rows.filter((r) => r.quantity > 0 && r.price > 0);
  const revenueByRegion: Record<string, number> = {};
  const unitsByProduct: Record<string, number> = {};
  for (const r of clean) {
    revenueByRegion[r.region] = (revenueByRegion[r.region] ?? 0) + r.quantity * r.price;
    unitsByProduct[r.product] = (unitsByProduct[r.product] ?? 0) + r.quantity;
  }
  const dropped = rows.length - clean.length;
  if (dropped > 0) ctx.log.warn(`partition ${rows[0]?.day}: dropped ${dropped} bad rows`);
  return { partition: rows[0]?.day ?? -1, rows: clean.length, dropped, revenueByRegion, unitsByProduct } satisfies Summary;
});

const aggregate = op({ name: 'aggregate' }, (_ctx, ...summaries: Summary[]) => {
  const revenue: Record<string, number> = {};
  const units: Record<string, number> = {};
  let rows = 0;
  let dropped = 0;
  for (const s of summaries) {
    rows += s.rows;
    dropped += s.dropped;
    for (const [k, v] of Object.entries(s.revenueByRegion)) revenue[k] = (revenue[k] ?? 0) + v;
    for (const [k, v] of Object.entries(s.unitsByProduct)) units[k] = (units[k] ?? 0) + v;
  }
  return { partitions: summaries.length, rows, dropped, revenue, units };
});

const report = op({ name: 'report' }, (ctx, totals: { partitions: number; rows: number; dropped: number; revenue: Record<string, number>; units: Record<string, number> }) => {
  const money = (n: number): string => n.toLocaleString('en-US', { maximumFractionDigits: 0 });
  const lines = [
    `Sales report: ${totals.partitions} partitions, ${totals.rows.toLocaleString('en-US')} rows (${totals.dropped} bad rows dropped)`,
    ...Object.entries(totals.revenue)
      .sort((a, b) => b[1] - a[1])
      .map(([region, v]) => `  ${region.padEnd(6)} revenue ${money(v).padStart(12)}`),
    `  best seller: ${Object.entries(totals.units).sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'none'}`,
  ];
  for (const l of lines) ctx.log.info(l);
  return lines.join('\n');
});

export const salesReport = job({ name: 'sales_report', description: 'generate, summarize, aggregate and report partitions of sales data on the cluster' }, () => {
  const summaries = [];
  for (let p = 0; p < PARTITIONS; p++) summaries.push(summarize(generate(p)));
  report(aggregate(...summaries));
});

// The cluster executor: a local cluster of its own per run, unless `weft run --address` names one.
export default new Definitions({ jobs: [salesReport], executor: clusterExecutor.configured({ cluster: { local: { workers: 2 } } }) });
