/**
 * When a weft process should stop, besides being told to: Ctrl-C and
 * SIGTERM, its parent going away (a LocalCluster or nanny child watches a
 * pipe from its parent on stdin, WEFT_EXIT_WITH_STDIN), and the npm process
 * it was started by going away (below).
 */
export function onStopSignals(stop: (reason: string) => void): void {
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  if (process.env['WEFT_EXIT_WITH_STDIN'] === '1') {
    process.stdin.on('end', () => stop('parent process went away'));
    process.stdin.on('close', () => stop('parent process went away'));
    process.stdin.resume();
  }
  watchNpmParent(stop);
}

const outputClosed: (() => void)[] = [];
let stdoutGone = false;

/**
 * When the reader of stdout goes away (`weft runs logs RUN --follow | head`):
 * what is printed after is dropped instead of crashing the process with
 * EPIPE, and `then` runs (a command that only prints stops; a run goes on
 * to its end, its events in run storage).
 */
export function onOutputClosed(then: () => void): void {
  if (stdoutGone) then();
  else outputClosed.push(then);
}

/** Installed once by the command line (main.ts). */
export function dropOutputWhenClosed(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    if (stdoutGone) return;
    stdoutGone = true;
    process.stdout.write = () => true;
    for (const then of outputClosed.splice(0)) then();
  });
}

/**
 * Started through npm or npx (which do not pass signals on to their child,
 * and leave it running when they are killed, with a shell between): stop
 * when that npm process is gone. Only then: a process started by hand may
 * outlive its shell on purpose (nohup).
 */
import { readFileSync } from 'node:fs';

/** The npm process among this one's nearest ancestors (Linux: /proc), or null. */
function npmAncestor(): number | null {
  let pid = process.ppid;
  for (let depth = 0; depth < 4 && pid > 1; depth++) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (/(^|[/\s])(npm|npx)(-cli\.js)?(\s|$)|npm exec/.test(cmd)) return pid;
      // The field after the command in parentheses, then the state: the parent's pid.
      pid = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
    } catch {
      return null;
    }
  }
  return null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function watchNpmParent(stop: (reason: string) => void): void {
  if (!process.env['npm_execpath'] && !process.env['npm_lifecycle_event'] && !process.env['npm_command']) return;
  const npm = npmAncestor() ?? process.ppid;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid !== parent || !alive(npm)) {
      clearInterval(timer);
      stop(`the npm process it was started by (pid ${npm}) is gone`);
    }
  }, 500);
  timer.unref();
}
