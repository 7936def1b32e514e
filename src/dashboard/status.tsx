/** The status page: workers, the task stream, progress per task group, tasks per state over time. */
import { useEffect, useRef } from 'preact/hooks';
import type { GroupView, StreamEntry } from '../scheduler/dashboard/snapshot.ts';
import { Head } from './head.tsx';
import { bytes, count, groupColor, STATE_COLORS } from './format.ts';
import { WINDOW_MS, type Model } from './model.ts';

export function StatusPage({ model, span }: { model: Model; span?: [number, number] }) {
  return (
    <>
      <div class="grid2">
        <WorkersPanel model={model} />
        <Progress groups={model.groups} />
      </div>
      <TaskStream model={model} span={span} />
      <StatesChart model={model} />
    </>
  );
}

function Bar({ parts, label }: { parts: [number, string][]; label?: string }) {
  const total = parts.reduce((s, [n]) => s + n, 0) || 1;
  return (
    <div class="bar">
      {parts.map(([n, color], i) => (n > 0 ? <span key={i} style={{ width: `${(100 * n) / total}%`, background: color }} /> : null))}
      {label ? <em>{label}</em> : null}
    </div>
  );
}

export function WorkersPanel({ model }: { model: Model }) {
  const maxMemory = Math.max(1, ...model.workers.map((w) => w.memory));
  return (
    <section id="workers-panel">
      <h2>Workers ({model.workers.length})</h2>
      <table>
        <Head cols={['worker', '#threads', 'processing', 'memory', 'CPU', '#results']} />
        <tbody>
          {model.workers.map((w) => (
            <tr key={w.name} class="worker-row" data-worker={w.name}>
              <td>{w.name}</td>
              <td class="num">{w.nthreads}</td>
              <td>
                <Bar parts={[[Math.min(w.processing, w.nthreads * 4), STATE_COLORS['processing'] as string], [Math.max(0, w.nthreads * 4 - w.processing), 'transparent']]} label={count(w.processing)} />
              </td>
              <td>
                <Bar parts={[[w.storedBytes, '#3b82f6'], [Math.max(0, w.memory - w.storedBytes), '#93c5fd'], [maxMemory - w.memory, 'transparent']]} label={bytes(w.memory)} />
              </td>
              <td>
                <Bar parts={[[Math.min(w.cpu ?? 0, 1), '#f97316'], [1 - Math.min(w.cpu ?? 0, 1), 'transparent']]} label={`${Math.round((w.cpu ?? 0) * 100)}%`} />
              </td>
              <td class="num">
                {count(w.stored)} ({bytes(w.storedBytes)})
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** Per task group: released (done and gone), in memory, processing, waiting, erred. */
export function groupParts(g: GroupView): { total: number; parts: [string, number, string][] } {
  const st = g.states;
  const parts: [string, number, string][] = [
    ['released', st.forgotten + st.released, '#bfdbfe'],
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
        Task stream ({count(model.ended)} tasks ended{span ? '' : `, last ${WINDOW_MS / 1000} s`})
      </h2>
      <canvas ref={canvas} data-tasks={model.stream.length} />
      <div class="legend">
        {[...new Set(model.stream.map((e) => e[3]))].slice(0, 20).map((g) => (
          <span key={g}>
            <i style={{ background: groupColor(g) }} />
            {g}
          </span>
        ))}
        <span>
          <i style={{ background: '#dc2626' }} />
          transfers, erred
        </span>
      </div>
    </section>
  );
}

function drawStream(c: HTMLCanvasElement, model: Model, span: [number, number] | undefined): void {
  const ratio = window.devicePixelRatio || 1;
  const width = c.clientWidth || 800;
  const lane = 18;
  // A lane per thread and one for transfers per worker, and the time axis.
  const height = Math.max(40, model.workers.reduce((s, w) => s + w.nthreads + 1, 0) * lane + 20);
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
      ctx.fillStyle = erred ? '#dc2626' : groupColor(group);
      const left = Math.max(label, x(start));
      ctx.fillRect(left, y + best * lane + 2, Math.max(1, x(start + duration) - left), lane - 4);
    }
    y += w.nthreads * lane;
    for (const [from, to, n] of model.transfers.get(w.name) ?? []) {
      if (to < t0) continue;
      const rate = n / Math.max(0.001, (to - from) / 1000);
      ctx.fillStyle = `rgba(220, 38, 38, ${Math.min(1, 0.25 + rate / 500e6)})`;
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
