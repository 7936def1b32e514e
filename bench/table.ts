/**
 * The rows a figures bench reports (bench:runs, bench:dynamic): each as it
 * is measured (a JSON line with --json, else a line on stderr), then a
 * markdown table for bench/README.md.
 */
export interface Row {
  bench: string;
  value: number;
  unit: string;
  target: string;
  met: boolean;
}

export class FigureTable {
  readonly rows: Row[] = [];

  constructor(private readonly json: boolean) {}

  row(bench: string, value: number, unit: string, target: string, met: boolean): void {
    const r = { bench, value: Math.round(value * 100) / 100, unit, target, met };
    this.rows.push(r);
    if (this.json) console.log(JSON.stringify(r));
    else process.stderr.write(`${bench}: ${r.value} ${unit}\n`);
  }

  /** The table, unless the rows went out as JSON. */
  print(): void {
    if (this.json) return;
    console.log('| bench | value | target |');
    console.log('|---|---|---|');
    for (const r of this.rows) console.log(`| ${r.bench} | ${r.value.toLocaleString('en')} ${r.unit} | ${r.target}${r.met ? '' : ' (missed)'} |`);
  }
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
