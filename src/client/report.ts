/**
 * A performance report (Dask's `performance_report`): one HTML file holding
 * what the dashboard recorded while a piece of work ran (the task stream,
 * progress per group, tasks by state, the workers) and the dashboard's own
 * script to draw it. It opens from disk in any browser, with nothing
 * fetched from anywhere.
 */
import { writeFile } from 'node:fs/promises';
import type { Snapshot } from '../scheduler/dashboard/snapshot.ts';

export interface ReportData {
  title: string;
  /** When the work started and ended (ms since the epoch). */
  start: number;
  end: number;
  snapshot: Snapshot;
}

/** Writes the report to `path`. */
export async function writeReport(path: string, data: ReportData): Promise<void> {
  const [{ dashboardScript }, { appPage }] = await Promise.all([import('../scheduler/dashboard/assets.ts'), import('../scheduler/dashboard/pages.ts')]);
  await writeFile(path, appPage(data.title, { script: await dashboardScript(), data }));
}
