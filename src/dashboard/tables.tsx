/** The workers, tasks and runs pages. */
import { useEffect, useState } from 'preact/hooks';
import type { RunView, TaskRow } from '../scheduler/dashboard/snapshot.ts';
import { Head } from './head.tsx';
import { bytes, count, groupColor, seconds, time } from './format.ts';
import type { Model } from './model.ts';

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
  const [rows, setRows] = useState<TaskRow[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let stop = false;
    const load = async (): Promise<void> => {
      try {
        const res = await fetch(`/api/v1/tasks?limit=500&q=${encodeURIComponent(query)}`);
        if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
        if (!stop) {
          setRows((await res.json()) as TaskRow[]);
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
  }, [query]);
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

/** Job runs on this cluster (the cluster executor's): their steps and latest events, live. */
export function RunsPage({ runs }: { runs: RunView[] }) {
  if (runs.length === 0) return <section id="runs">No job run has used this cluster yet.</section>;
  return (
    <>
      {runs.map((r) => (
        <section key={r.runId} class="run" data-run={r.runId}>
          <h2>
            Run {r.runId} · {time(r.first)} to {time(r.last)}
          </h2>
          <table>
            <Head cols={['step', 'state', '#attempt', '#duration']} />
            <tbody>
              {r.steps.map((s) => (
                <tr key={s.key} class="step-row" data-step={s.key} data-state={s.state}>
                  <td>{s.key}</td>
                  <td class={s.state === 'STEP_FAILURE' ? 'err' : ''}>{s.state.replace('STEP_', '').toLowerCase()}</td>
                  <td class="num">{s.attempt}</td>
                  <td class="num">{s.start !== null ? seconds(((s.end ?? Date.now()) - s.start) / 1000) : '-'}</td>
                </tr>
              ))}
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
