/** The status page: workers, the task stream, progress per task group, tasks per state over time. */
import { useEffect, useRef } from 'preact/hooks';
import type { GroupView, StreamEntry } from '../scheduler/dashboard/snapshot.ts';
import type { WorkerSummary } from '../protocol/messages.ts';
import { Head } from './head.tsx';
import { bytes, count, groupColor, STATE_COLORS } from './format.ts';
import { WINDOW_MS, type Model } from './model.ts';

/** Laid out to fill the window (main.status in pages.ts): workers and progress above, the task stream taking the height left, states over time below. */
export function StatusPage({ model, span }: { model: Model; span?: [number, number] }) {
  return (
    <>
      <WorkersPanel model={model} />
      <Progress groups={model.groups} />
      <TaskStream model={model} span={span} />
      <StatesChart model={model} />
    </>
  );
}

/** Transfers in the task stream (violet: apart from errors' red and from the groups' colours, which are never this dark and blue-red). */
export const TRANSFER_RGB = '109, 40, 217';
export const ERRED_COLOR = '#dc2626';

function Bar({ parts, label }: { parts: [number, string][]; label?: string }) {
  const total = parts.reduce((s, [n]) => s + n, 0) || 1;
  return (
    <div class="bar">
      {parts.map(([n, color], i) => (n > 0 ? <span key={i} style={{ width: `${(100 * n) / total}%`, background: color }} /> : null))}
      {label ? <em>{label}</em> : null}
    </div>
  );
}

/**
 * A worker's memory bar, against its limit (or, without one, the largest
 * worker's memory): results held (managed), the rest of the process
 * (unmanaged), and results spilled to disk beyond; orange while it is paused.
 */
function MemoryBar({ w, scale }: { w: WorkerSummary; scale: number }) {
  const limit = w.memoryLimit ?? 0;
  const spilled = w.spilledBytes ?? 0;
  const total = Math.max(scale, w.memory + spilled);
  const managed = Math.min(w.storedBytes, w.memory);
  const label = `${bytes(w.memory)}${limit > 0 ? ` / ${bytes(limit)}` : ''}${spilled > 0 ? ` + ${bytes(spilled)} spilled` : ''}${w.paused ? ' (paused)' : ''}${w.spillBlocked ? ' (cannot spill: disk full?)' : ''}`;
  return (
    <Bar
      parts={[
        [managed, w.paused ? '#f97316' : '#3b82f6'],
        [w.memory - managed, w.paused ? '#fdba74' : '#93c5fd'],
        [spilled, '#9ca3af'],
        [Math.max(0, total - w.memory - spilled), 'transparent'],
      ]}
      label={label}
    />
  );
}

export function WorkersPanel({ model }: { model: Model }) {
  const scale = Math.max(1, ...model.workers.map((w) => ((w.memoryLimit ?? 0) > 0 ? (w.memoryLimit as number) : w.memory)));
  return (
    <section id="workers-panel">
      <h2>Workers ({model.workers.length})</h2>
      <table>
        <Head cols={['worker', '#threads', 'processing', 'memory', 'CPU', '#results', 'stolen in/out']} />
        <tbody>
          {model.workers.map((w) => (
            <tr key={w.name} class="worker-row" data-worker={w.name}>
              <td>{w.name}</td>
              <td class="num">{w.nthreads}</td>
              <td>
                <Bar parts={[[Math.min(w.processing, w.nthreads * 4), STATE_COLORS['processing'] as string], [Math.max(0, w.nthreads * 4 - w.processing), 'transparent']]} label={count(w.processing)} />
              </td>
              <td class="memory" data-memory={w.memory} data-limit={w.memoryLimit ?? 0}>
                <MemoryBar w={w} scale={(w.memoryLimit ?? 0) > 0 ? (w.memoryLimit as number) : scale} />
              </td>
              <td>
                <Bar parts={[[Math.min(w.cpu ?? 0, 1), '#f97316'], [1 - Math.min(w.cpu ?? 0, 1), 'transparent']]} label={`${Math.round((w.cpu ?? 0) * 100)}%`} />
              </td>
              <td class="num">
                {count(w.stored)} ({bytes(w.storedBytes)})
              </td>
              <td class="num stolen" title="tasks work stealing moved to this worker / away from it">
                {count(w.stolenIn ?? 0)} / {count(w.stolenOut ?? 0)}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** Per task group: released (done, its result let go), in memory, processing, waiting, erred; of the tasks the scheduler holds. */
export function groupParts(g: GroupView): { total: number; parts: [string, number, string][] } {
  const st = g.states;
  const parts: [string, number, string][] = [
    ['released', st.released, '#bfdbfe'],
    ['in memory', st.memory, STATE_COLORS['memory'] as string],
    ['processing', st.processing, STATE_COLORS['processing'] as string],
    ['waiting', st.waiting + st.queued + st['no-worker'], STATE_COLORS['waiting'] as string],
    ['erred', st.erred, STATE_COLORS['erred'] as string],
  ];
  return { total: parts.reduce((s, p) => s + p[1], 0), parts };
}

export function Progress({ groups }: { groups: GroupView[] }) {
  return (
    <section id="progress">
      <h2>Progress by task group</h2>
      <table>
        <Head cols={['group', 'tasks', '#done', '#in memory', '#erred', '#waiting']} />
        <tbody>
          {groups.length === 0 ? (
            <tr>
              <td colSpan={6} class="muted">
                No task is held now: a graph's groups show while the scheduler holds its tasks.
              </td>
            </tr>
          ) : null}
          {groups.map((g) => {
            const { total, parts } = groupParts(g);
            const waiting = g.states.waiting + g.states.queued + g.states['no-worker'] + g.states.processing;
            return (
              <tr key={g.name} class="group-row" data-group={g.name} data-done={g.done} data-total={total} data-waiting={waiting}>
                <td>
                  <i style={{ display: 'inline-block', width: '10px', height: '10px', background: groupColor(g.name), marginRight: '6px' }} />
                  {g.name}
                </td>
                <td style={{ width: '40%' }}>
                  <Bar parts={parts.map(([, n, c]) => [n, c])} label={`${count(g.done)} / ${count(total)}`} />
                </td>
                <td class="num">{count(g.done)}</td>
                <td class="num">{count(g.states.memory)}</td>
                <td class={g.erred > 0 ? 'num err' : 'num'}>{count(g.erred)}</td>
                <td class="num">{count(waiting)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}

/**
 * One lane per worker thread, a bar per task coloured by its group (red when
 * it erred), and under each worker a strip where it fetched data from its
 * peers (darker: more bytes per second). Workers report durations, not
 * threads: tasks are laid into their worker's lanes as they fit.
 */
export function TaskStream({ model, span }: { model: Model; span?: [number, number] | undefined }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const c = canvas.current;
    if (!c) return;
    drawStream(c, model, span);
  });
  return (
    <section id="task-stream">
      <h2>
        Task stream ({count(model.ended)} tasks ended{span ? '' : ` in the last ${WINDOW_MS / 1000} s`})
      </h2>
      <div class="stream-box">
        <canvas ref={canvas} data-tasks={model.stream.length} />
      </div>
      <div class="legend">
        {[...new Set(model.stream.map((e) => e[3]))].slice(0, 20).map((g) => (
          <span key={g}>
            <i style={{ background: groupColor(g) }} />
            {g}
          </span>
        ))}
        <span>
          <i style={{ background: ERRED_COLOR }} />
          erred
        </span>
        <span>
          <i style={{ background: `rgb(${TRANSFER_RGB})` }} />
          transfers
        </span>
      </div>
    </section>
  );
}

function drawStream(c: HTMLCanvasElement, model: Model, span: [number, number] | undefined): void {
  const ratio = window.devicePixelRatio || 1;
  const width = c.clientWidth || 800;
  // A lane per thread and one for transfers per worker, and the time axis: lanes share the height the page gives the stream.
  const lanes = Math.max(1, model.workers.reduce((s, w) => s + w.nthreads + 1, 0));
  const box = c.parentElement?.clientHeight ?? 0;
  const lane = Math.max(14, Math.min(48, Math.floor((box - 20) / lanes)));
  const height = Math.max(40, box, lanes * lane + 20);
  c.width = width * ratio;
  c.height = height * ratio;
  c.style.height = `${height}px`;
  const ctx = c.getContext('2d');
  if (!ctx) return;
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const [t0, t1] = span ?? [model.now - WINDOW_MS, model.now];
  const label = 90;
  const x = (t: number): number => label + ((t - t0) / (t1 - t0)) * (width - label);
  let y = 0;
  const byWorker = new Map<string, StreamEntry[]>();
  for (const e of model.stream) {
    if (e[1] + e[2] < t0) continue;
    let list = byWorker.get(e[0]);
    if (!list) byWorker.set(e[0], (list = []));
    list.push(e);
  }
  ctx.font = '11px system-ui, sans-serif';
  for (const w of model.workers) {
    ctx.fillStyle = '#6b7280';
    ctx.fillText(w.name.slice(0, 14), 2, y + 12);
    const ends = new Array<number>(w.nthreads).fill(-Infinity);
    const list = (byWorker.get(w.name) ?? []).sort((a, b) => a[1] - b[1]);
    for (const [, start, duration, group, erred] of list) {
      // The first lane free at the task's start, else the one free soonest.
      let best = 0;
      for (let i = 0; i < ends.length; i++) {
        if ((ends[i] as number) <= start) {
          best = i;
          break;
        }
        if ((ends[i] as number) < (ends[best] as number)) best = i;
      }
      ends[best] = start + duration;
      ctx.fillStyle = erred ? ERRED_COLOR : groupColor(group);
      const left = Math.max(label, x(start));
      // At least 2 px: a task that took no time (one that failed at once) still covers a whole pixel.
      ctx.fillRect(left, y + best * lane + 2, Math.max(2, x(start + duration) - left), lane - 4);
    }
    y += w.nthreads * lane;
    for (const [from, to, n] of model.transfers.get(w.name) ?? []) {
      if (to < t0) continue;
      const rate = n / Math.max(0.001, (to - from) / 1000);
      ctx.fillStyle = `rgba(${TRANSFER_RGB}, ${Math.min(1, 0.35 + rate / 500e6)})`;
      ctx.fillRect(Math.max(label, x(from)), y + 3, Math.max(1, x(to) - Math.max(label, x(from))), lane - 8);
    }
    y += lane;
  }
  ctx.strokeStyle = '#e5e7eb';
  ctx.beginPath();
  ctx.moveTo(label, height - 16);
  ctx.lineTo(width, height - 16);
  ctx.stroke();
  ctx.fillStyle = '#6b7280';
  // Live: the last seconds up to now; a report: its work from start to end.
  const secs = ((t1 - t0) / 1000).toFixed(span ? 2 : 0);
  ctx.fillText(span ? '0 s' : `-${secs} s`, label, height - 3);
  ctx.fillText(span ? `${secs} s` : 'now', width - (span ? 40 : 24), height - 3);
}

const CHART_STATES = ['waiting', 'queued', 'no-worker', 'processing', 'memory', 'erred'] as const;

/** Tasks per state over the sampled past (two samples a second), one line per state. */
export function StatesChart({ model }: { model: Model }) {
  const h = model.history;
  const width = 800;
  const height = 160;
  const max = Math.max(1, ...h.map(([, c]) => CHART_STATES.reduce((m, s) => Math.max(m, c[s] ?? 0), 0)));
  const t0 = h[0]?.[0] ?? 0;
  const t1 = h[h.length - 1]?.[0] ?? 1;
  const x = (t: number): number => (t1 === t0 ? 0 : ((t - t0) / (t1 - t0)) * width);
  const y = (n: number): number => height - (n / max) * (height - 10);
  return (
    <section id="states-chart">
      <h2>Tasks by state over time (max {count(max)})</h2>
      <svg viewBox={`0 0 ${width} ${height}`} preserveAspectRatio="none" style={{ width: '100%', height: `${height}px` }}>
        {CHART_STATES.map((s) => (
          <polyline key={s} fill="none" stroke={STATE_COLORS[s]} stroke-width="2" vector-effect="non-scaling-stroke" points={h.map(([t, c]) => `${x(t).toFixed(1)},${y(c[s] ?? 0).toFixed(1)}`).join(' ')} />
        ))}
      </svg>
      <div class="legend">
        {CHART_STATES.map((s) => (
          <span key={s}>
            <i style={{ background: STATE_COLORS[s] }} />
            {s} {count(model.states[s] ?? 0)}
          </span>
        ))}
      </div>
    </section>
  );
}
