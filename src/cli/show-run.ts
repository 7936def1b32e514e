/**
 * How the commands that run a job show it (weft run, weft runs reexecute,
 * weft runs launch) and how weft runs logs prints events: JSON lines, live
 * step counts on a terminal, or one line per event.
 */
import { eventForJson, type RunEvent } from '../jobs/events.ts';
import type { ExecuteOptions, JobExecutionResult } from '../jobs/run.ts';
import { LOG_LEVELS, type LogLevel } from '../util/log.ts';

function time(ts: number): string {
  return new Date(ts).toISOString().slice(11, 23);
}

/** An event as one line (and the stack of a failure below it). */
export function eventLine(ev: RunEvent): string {
  const where = ev.stepKey ? ` ${ev.stepKey}` : '';
  const lvl = ev.type === 'LOG' ? ` [${ev.level}]` : '';
  const stack = (ev.type === 'STEP_FAILURE' || ev.type === 'RUN_FAILURE') && ev.error?.stack ? `\n${ev.error.stack.replace(/^/gm, '    ')}` : '';
  return `${time(ev.timestamp)} ${ev.type}${where}${lvl} ${ev.message}${stack}`;
}

/** Live step counts on one terminal line; events that matter are printed above it. */
class Progress {
  private done = 0;
  private failed = 0;
  private skipped = 0;
  private running = new Set<string>();

  constructor(private readonly total: number) {}

  onEvent(ev: RunEvent): void {
    const k = ev.stepKey;
    if (k !== null) {
      if (ev.type === 'STEP_START') this.running.add(k);
      else if (ev.type === 'STEP_SUCCESS') this.end(k, 'done');
      else if (ev.type === 'STEP_FAILURE') this.end(k, 'failed');
      else if (ev.type === 'STEP_SKIPPED') this.end(k, 'skipped');
      else if (ev.type === 'STEP_UP_FOR_RETRY') this.running.delete(k);
    }
    const show = ev.type === 'LOG' || ev.type === 'STEP_FAILURE' || ev.type === 'STEP_UP_FOR_RETRY' || ev.type.startsWith('RUN_') || ev.type === 'ENGINE_EVENT';
    process.stderr.write('\r\u001b[2K');
    if (show) process.stderr.write(`${eventLine(ev)}\n`);
    if (!ev.type.startsWith('RUN_') || ev.type === 'RUN_START') process.stderr.write(this.status());
  }

  private end(k: string, how: 'done' | 'failed' | 'skipped'): void {
    this.running.delete(k);
    this[how]++;
  }

  private status(): string {
    const running = [...this.running];
    const names = running.slice(0, 3).join(', ') + (running.length > 3 ? ', ...' : '');
    return `steps: ${this.done}/${this.total} done, ${running.length} running${running.length > 0 ? ` (${names})` : ''}, ${this.failed} failed${this.skipped > 0 ? `, ${this.skipped} skipped` : ''}`;
  }
}

/** How a command shows a run's events: as JSON lines, live step counts on a terminal, or one line per event. */
export interface ShowOptions {
  json: boolean;
  /** Step LOG events below it are not shown (default: all). */
  logLevel?: LogLevel;
}

/**
 * Runs `launch` with events shown as asked and Ctrl-C / SIGTERM cancelling
 * the run; resolves with the exit code (0 success, 1 failure, 130 canceled).
 */
export async function showRun(show: ShowOptions, steps: number, launch: (opts: ExecuteOptions) => Promise<JobExecutionResult>): Promise<number> {
  const controller = new AbortController();
  const cancel = (): void => controller.abort(new Error('interrupted'));
  process.once('SIGINT', cancel);
  process.once('SIGTERM', cancel);
  const tty = process.stderr.isTTY && !show.json;
  const shownFrom = LOG_LEVELS.indexOf(show.logLevel ?? 'trace');
  const progress = tty ? new Progress(steps) : null;
  try {
    const result = await launch({
      signal: controller.signal,
      onEvent: (ev) => {
        if (ev.type === 'LOG' && LOG_LEVELS.indexOf((ev.level ?? 'info') as LogLevel) < shownFrom) return;
        if (show.json) process.stdout.write(`${JSON.stringify(eventForJson(ev))}\n`);
        else if (progress) progress.onEvent(ev);
        else process.stdout.write(`${eventLine(ev)}\n`);
      },
    });
    return result.success ? 0 : result.canceled ? 130 : 1;
  } finally {
    process.off('SIGINT', cancel);
    process.off('SIGTERM', cancel);
  }
}

