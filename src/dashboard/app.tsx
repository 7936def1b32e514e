/**
 * The dashboard in the browser: one script for every page. Live pages
 * follow /api/v1/stream (server-sent events, a few updates a second); a
 * performance report carries its data inside the page and draws it once.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { Snapshot } from '../scheduler/dashboard/snapshot.ts';
import { apply, emptyModel, type Model } from './model.ts';
import { StatusPage } from './status.tsx';
import { RunsPage, TasksPage, WorkersPage } from './tables.tsx';

const PAGES = ['status', 'workers', 'tasks', 'runs'] as const;
type Page = (typeof PAGES)[number];

/** A performance report's data (see Client.performanceReport). */
interface Report {
  title: string;
  start: number;
  end: number;
  snapshot: Snapshot;
}

function useLive(): Model {
  const [model, setModel] = useState<Model>(emptyModel);
  useEffect(() => {
    const source = new EventSource('/api/v1/stream');
    source.onmessage = (e: MessageEvent<string>) => setModel((m) => apply(m, JSON.parse(e.data) as Snapshot));
    source.onerror = () => setModel((m) => ({ ...m, connected: false }));
    return () => source.close();
  }, []);
  return model;
}

function Live({ page }: { page: Page }) {
  const model = useLive();
  return (
    <>
      <header>
        <b>weft</b>
        {PAGES.map((p) => (
          <a key={p} href={`/${p}`} class={p === page ? 'on' : ''}>
            {p}
          </a>
        ))}
        <span class="live" id="live" data-connected={model.connected ? 'yes' : 'no'}>
          {model.connected ? 'live' : 'connecting...'}
        </span>
      </header>
      <main class={page === 'status' ? 'status' : ''}>
        {page === 'status' ? <StatusPage model={model} /> : null}
        {page === 'workers' ? <WorkersPage model={model} /> : null}
        {page === 'tasks' ? <TasksPage /> : null}
        {page === 'runs' ? <RunsPage /> : null}
      </main>
    </>
  );
}

function ReportView({ report }: { report: Report }) {
  const model = { ...apply(emptyModel(), report.snapshot, true), now: report.end };
  return (
    <>
      <header>
        <b>weft</b>
        <span>{report.title}</span>
        <span class="live">
          {new Date(report.start).toLocaleString('en-GB')} · {((report.end - report.start) / 1000).toFixed(2)} s
        </span>
      </header>
      <main>
        <StatusPage model={model} span={[report.start, report.end]} />
        <WorkersPage model={model} />
      </main>
    </>
  );
}

const root = document.getElementById('app');
const embedded = document.getElementById('weft-report');
if (root && embedded) render(<ReportView report={JSON.parse(embedded.textContent ?? '{}') as Report} />, root);
else if (root) {
  const name = location.pathname.slice(1);
  render(<Live page={(PAGES as readonly string[]).includes(name) ? (name as Page) : 'status'} />, root);
}
