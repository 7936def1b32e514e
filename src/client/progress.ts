/**
 * Progress of a set of futures on a terminal: a live bar on a TTY, a line
 * every 10 % otherwise. Resolves when every future has finished or failed.
 */
import type { Future } from './future.ts';

export interface ProgressResult {
  finished: number;
  failed: number;
  seconds: number;
}

export async function progress(futures: readonly Future[], opts: { label?: string; stream?: NodeJS.WriteStream } = {}): Promise<ProgressResult> {
  const stream = opts.stream ?? process.stderr;
  const label = opts.label ?? 'tasks';
  const total = futures.length;
  const start = performance.now();
  let finished = 0;
  let failed = 0;
  let lastDecile = -1;
  const tty = stream.isTTY === true;
  const render = (): void => {
    const done = finished + failed;
    const secs = ((performance.now() - start) / 1000).toFixed(1);
    if (tty) {
      const width = 30;
      const filled = total === 0 ? width : Math.round((done / total) * width);
      const bar = '#'.repeat(filled) + '.'.repeat(width - filled);
      stream.write(`\r[${bar}] ${done}/${total} ${label}${failed ? ` (${failed} failed)` : ''}  ${secs}s`);
    } else {
      const decile = total === 0 ? 10 : Math.floor((done / total) * 10);
      if (decile !== lastDecile) {
        lastDecile = decile;
        stream.write(`${done}/${total} ${label} done${failed ? ` (${failed} failed)` : ''} after ${secs}s\n`);
      }
    }
  };
  render();
  const timer = tty ? setInterval(render, 100) : null;
  await Promise.all(
    futures.map((f) =>
      f.done().then(
        () => {
          finished++;
          if (!tty) render();
        },
        () => {
          failed++;
          if (!tty) render();
        },
      ),
    ),
  );
  if (timer) clearInterval(timer);
  render();
  if (tty) stream.write('\n');
  return { finished, failed, seconds: (performance.now() - start) / 1000 };
}
