/** The workers, tasks and runs pages. */
import { useEffect, useState } from 'preact/hooks';
import type { RunView, TaskRow } from '../scheduler/dashboard/snapshot.ts';
import { Head } from './head.tsx';
import { bytes, count, groupColor, seconds, time } from './format.ts';
import type { Model } from './model.ts';

/** JSON from `url`, fetched now and every second while the page shows it; and the last error, if the last fetch failed. */
function usePolled<T>(url: string): [T | null, string | null] {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let stop = false;
    const load = async (): Promise<void> => {
      try {
        const res = await fetch(url);
        if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
        const body = (await res.json()) as T;
        if (!stop) {
          setData(body);
          setError(null);
        }
      } catch (err) {
        if (!stop) setError((err as Error).message);
      }
    };
    void load();
    const timer = setInterval(() => void load(), 1000);
    return () => {
      stop = true;
      clearInterval(timer);
    };
  }, [url]);
  return [data, error];
}

export function WorkersPage({ model }: { model: Model }) {
  return (
    <section id="workers-table">
      <h2>Workers ({model.workers.length})</h2>
      <table>
        <Head cols={['name', 'address', '#pid', '#threads', 'resources', '#processing', '#results', '#result bytes', '#memory (RSS)', '#CPU', '#sent to peers', '#fetched']} />
        <tbody>
          {model.workers.map((w) => (
            <tr key={w.name} class="worker-row" data-worker={w.name}>
              <td>{w.name}</td>
              <td>{w.address}</td>
              <td class="num">{w.pid}</td>
              <td class="num">{w.nthreads}</td>
              <td>{Object.entries(w.resources).map(([k, v]) => `${k}=${v}`).join(', ') || '-'}</td>
              <td class="num">{count(w.processing)}</td>
              <td class="num">{count(w.stored)}</td>
              <td class="num">{bytes(w.storedBytes)}</td>
              <td class="num">{bytes(w.memory)}</td>
              <td class="num">{Math.round((w.cpu ?? 0) * 100)}%</td>
              <td class="num">{bytes(w.bytesSentToPeers ?? 0)}</td>
              <td class="num">{bytes(w.bytesFetched ?? 0)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** The latest tasks that ended, searched on the scheduler (by key, group, state or worker), refreshed every second. */
export function TasksPage() {
  const [query, setQuery] = useState('');
  const [rows, error] = usePolled<TaskRow[]>(`/api/v1/tasks?limit=500&q=${encodeURIComponent(query)}`);
  return (
    <section id="tasks-table">
      <h2>Recent tasks</h2>
      <p>
        <input type="search" placeholder="search key, group, state or worker" value={query} onInput={(e) => setQuery((e.target as HTMLInputElement).value)} />
        {error ? <span class="err"> {error}</span> : null}
      </p>
      <table>
        <Head cols={['key', 'group', 'state', 'worker', 'ended', '#duration', 'error']} />
        <tbody>
          {(rows ?? []).map((r, i) => (
            <tr key={`${r.key}-${i}`} class="task-row">
              <td>{r.key}</td>
              <td>
                <i style={{ display: 'inline-block', width: '8px', height: '8px', background: groupColor(r.group), marginRight: '4px' }} />
                {r.group}
              </td>
              <td class={r.state === 'erred' ? 'err' : ''}>{r.state}</td>
              <td>{r.worker}</td>
              <td>{time(r.end)}</td>
              <td class="num">{seconds(r.duration)}</td>
              <td class="err">{r.error ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows && rows.length === 0 ? <p>No task has ended{query ? ' that matches' : ' yet'}.</p> : null}
    </section>
  );
}

/**
 * Job runs, live: run storage's latest on every executor (when the scheduler
 * was given run storage), and the cluster executor's runs seen on this
 * cluster. A failed run has a button that queues its re-execution from
 * failure (weft daemon starts it).
 */
export function RunsPage() {
  const [data, error] = usePolled<{ runs: RunView[]; storage: string | null }>('/api/v1/runs');
  const [queued, setQueued] = useState<Record<string, string>>({});
  const reexecute = async (runId: string): Promise<void> => {
    const res = await fetch(`/api/v1/runs/${encodeURIComponent(runId)}/reexecute`, { method: 'POST' });
    const text = await res.text();
    setQueued((q) => ({ ...q, [runId]: res.ok ? `queued run ${(JSON.parse(text) as { runId: string }).runId}: weft daemon starts it` : `refused: ${text.trim()}` }));
  };
  if (!data) return <section id="runs">{error ? <span class="err">{error}</span> : 'Loading runs...'}</section>;
  const { runs } = data;
  return (
    <>
      {data.storage ? <p class="note" id="runs-storage">{data.storage}</p> : null}
      {error ? <p class="err">{error}</p> : null}
      {runs.length === 0 ? <section id="runs">No job run yet.</section> : null}
      {runs.map((r) => (
        <section key={r.runId} class="run" data-run={r.runId} data-status={r.status ?? ''} data-executor={r.executor ?? ''}>
          <h2>
            {r.job ? `${r.job} · ` : ''}Run {r.runId}
            {r.status ? <span class={r.status === 'FAILURE' ? 'err' : ''}> · {r.status.toLowerCase()}</span> : null}
            {r.executor ? ` · ${r.executor}` : ''} · {time(r.first)} to {time(r.last)}
            {r.parentRunId ? ` · re-executes ${r.parentRunId.slice(0, 8)}` : ''}
          </h2>
          {r.status === 'FAILURE' || r.status === 'CANCELED' ? (
            <p>
              <button type="button" class="reexecute" onClick={() => void reexecute(r.runId)}>
                re-execute from failure
              </button>{' '}
              <span class="queued">{queued[r.runId] ?? ''}</span>
            </p>
          ) : null}
          <table>
            <Head cols={['step', 'state', '#attempt', '#duration']} />
            <tbody>
              {groupCopies(r.steps).map((g) =>
                'copies' in g ? (
                  <tr key={g.template} class="step-group" data-template={g.template}>
                    <td colSpan={4}>
                      <details>
                        <summary>
                          {g.template}[...] · {g.copies.length} cop{g.copies.length === 1 ? 'y' : 'ies'}: {stateCounts(g.copies)}
                        </summary>
                        <table>
                          <tbody>{g.copies.map(stepRow)}</tbody>
                        </table>
                      </details>
                    </td>
                  </tr>
                ) : (
                  stepRow(g)
                ),
              )}
            </tbody>
          </table>
          <details>
            <summary>{r.events.length} latest events</summary>
            <table>
              <tbody>
                {r.events.map((e, i) => (
                  <tr key={i}>
                    <td>{time(e.timestamp)}</td>
                    <td>{e.type}</td>
                    <td>{e.stepKey ?? ''}</td>
                    <td>
                      <pre>{e.message}</pre>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </details>
        </section>
      ))}
    </>
  );
}

type StepRowView = RunView['steps'][number];

function stepRow(s: StepRowView): preact.JSX.Element {
  return (
    <tr key={s.key} class="step-row" data-step={s.key} data-state={s.state}>
      <td>{s.key}</td>
      <td class={s.state === 'STEP_FAILURE' ? 'err' : ''}>{s.state.replace('STEP_', '').toLowerCase()}</td>
      <td class="num">{s.attempt}</td>
      <td class="num">{s.start !== null ? seconds(((s.end ?? Date.now()) - s.start) / 1000) : '-'}</td>
    </tr>
  );
}

/** Copies of a mapped step (`op[key]`) grouped under their op, where its first copy appears; other steps as they are. */
function groupCopies(steps: readonly StepRowView[]): (StepRowView | { template: string; copies: StepRowView[] })[] {
  const out: (StepRowView | { template: string; copies: StepRowView[] })[] = [];
  const groups = new Map<string, StepRowView[]>();
  for (const s of steps) {
    const open = s.key.indexOf('[');
    if (open < 0 || !s.key.endsWith(']')) {
      out.push(s);
      continue;
    }
    const template = s.key.slice(0, open);
    const g = groups.get(template);
    if (g) g.push(s);
    else {
      const copies = [s];
      groups.set(template, copies);
      out.push({ template, copies });
    }
  }
  return out;
}

/** `2 success, 1 failure`: how many copies are in each state. */
function stateCounts(copies: readonly StepRowView[]): string {
  const n = new Map<string, number>();
  for (const c of copies) {
    const st = c.state.replace('STEP_', '').toLowerCase();
    n.set(st, (n.get(st) ?? 0) + 1);
  }
  return [...n].map(([st, k]) => `${k} ${st}`).join(', ');
}
