/**
 * What the dashboard shows, gathered beside the scheduler's state machine
 * (this is the server's side: it sees the workers' messages as they pass).
 *
 * On the hot path it only writes a finished task into a ring of plain
 * columns (no object per task); the figures are read from counters the
 * state machine keeps. Updates are built a few times a second, once for all
 * open pages, and only while a page is open.
 */
import type { ServerResponse } from 'node:http';
import type { z } from 'zod';
import { lazySchemas } from '../../util/zod.ts';
import type { WorkerSummary } from '../../protocol/messages.ts';
import { decode } from '../../protocol/codec.ts';
import { eachRunEvent, RUN_TOPIC_PREFIX } from '../../protocol/topics.ts';
import { byState, type TaskStatus } from '../task-state.ts';
import type { GroupCounts } from '../state-machine.ts';
import { applyStepEvent, isStepState } from './steps.ts';
import { RUN_EVENTS, STREAM_PER_UPDATE, type GroupView, type HistorySample, type RunView, type Snapshot, type StepView, type StreamEntry, type TaskRow } from './snapshot.ts';

/** What the feed reads from the scheduler. */
export interface FeedSource {
  workers(): WorkerSummary[];
  states(): Partial<Record<TaskStatus, number>>;
  groups(): GroupCounts[];
  /** A known task's group and state, or null once it is forgotten. */
  task(key: string): { group: string | null; state: TaskStatus } | null;
}

/** The latest tasks kept for the stream and the tasks page. */
const RING = 16_384;
/** A page opens with the tasks that ended this long ago at most (as a page open all along drew them). */
export const OPEN_WINDOW_MS = 60_000;
/**
 * Tasks whose group the sampler looks up per sample, the latest of those
 * ended since the one before: what a page open all along would have been
 * sent (STREAM_PER_UPDATE per update). A lookup per task would cost the
 * scheduler up to a tenth of its time at 150,000 tasks a second.
 */
const GROUPS_PER_SAMPLE = 2 * STREAM_PER_UPDATE;
const HISTORY = 600;
const RUNS = 20;
const UPDATE_MS = 250;
const SAMPLE_MS = 500;

/** A run event as the cluster executor's steps publish it (checked: it comes from task code). */
const runEventSchema = lazySchemas((z) =>
  z.object({
    type: z.string().max(64),
    runId: z.string().max(512),
    stepKey: z.string().max(1024).nullable(),
    timestamp: z.number(),
    message: z.string().transform((m) => (m.length > 2000 ? `${m.slice(0, 2000)}...` : m)),
    attempt: z.number().int().nonnegative().optional(),
  }),
);
type RunEventIn = z.infer<ReturnType<typeof runEventSchema>>;

interface RunRecord {
  view: RunView;
  steps: Map<string, StepView>;
}

export class DashboardFeed {
  private readonly keys: string[] = new Array<string>(RING).fill('');
  private readonly workers: string[] = new Array<string>(RING).fill('');
  private readonly ends = new Float64Array(RING);
  private readonly durations = new Float64Array(RING);
  private readonly erred = new Uint8Array(RING);
  private readonly errors = new Map<number, string>();
  /** Each task's group, looked up by the sampler ('' until then; see GROUPS_PER_SAMPLE). */
  private readonly groupOf: string[] = new Array<string>(RING).fill('');
  /** Tasks recorded so far; slot = count % RING. */
  private count = 0;
  /** `count` when the sampler last looked groups up. */
  private grouped = 0;
  /**
   * The group last seen for each key prefix: a task forgotten before its
   * group was looked up (a graph whose results were let go at once) takes
   * the group of its key's prefix, as its siblings had.
   */
  private readonly groupByPrefix = new Map<string, string>();
  /** `count` at the last update sent. */
  private sent = 0;
  private readonly history: HistorySample[] = [];
  private historySent = 0;
  private readonly runs = new Map<string, RunRecord>();
  private readonly pages = new Set<ServerResponse>();
  private updater: NodeJS.Timeout | null = null;
  private readonly sampler: NodeJS.Timeout;

  constructor(private readonly source: FeedSource) {
    // The states over time are sampled whether a page is open or not (it costs a copy of eight counters twice a second).
    this.sampler = setInterval(() => this.sample(Date.now()), SAMPLE_MS);
    this.sampler.unref();
  }

  /** A worker's `finished` report. */
  finished(worker: string, keys: readonly string[], durations: ArrayLike<number>, now: number): void {
    for (let i = 0; i < keys.length; i++) {
      const slot = this.count++ % RING;
      this.keys[slot] = keys[i] as string;
      this.workers[slot] = worker;
      this.ends[slot] = now;
      this.durations[slot] = durations[i] ?? 0;
      this.groupOf[slot] = '';
      if (this.erred[slot] === 1) {
        this.erred[slot] = 0;
        this.errors.delete(slot);
      }
    }
  }

  /** A worker's `erred` report. */
  failed(worker: string, key: string, message: string, now: number): void {
    const slot = this.count++ % RING;
    this.keys[slot] = key;
    this.workers[slot] = worker;
    this.ends[slot] = now;
    this.durations[slot] = 0;
    this.groupOf[slot] = '';
    this.erred[slot] = 1;
    this.errors.set(slot, message);
  }

  /** Task events passing through: those on a run's topic (the cluster executor's steps) make the runs page. */
  taskEvents(topics: readonly string[], data: readonly Uint8Array[]): void {
    for (let i = 0; i < topics.length; i++) {
      const topic = topics[i] as string;
      if (!topic.startsWith(RUN_TOPIC_PREFIX)) continue;
      let value: unknown;
      try {
        value = decode(data[i] as Uint8Array);
      } catch {
        continue; // not msgpack: not a run event
      }
      eachRunEvent(value, (ev) => this.runEventIn(ev));
    }
  }

  private runEventIn(value: unknown): void {
    const parsed = runEventSchema().safeParse(value);
    if (parsed.success) this.runEvent(parsed.data);
  }

  private runEvent(ev: RunEventIn): void {
    let run = this.runs.get(ev.runId);
    if (!run) {
      run = { view: { runId: ev.runId, first: ev.timestamp, last: ev.timestamp, steps: [], events: [] }, steps: new Map() };
      this.runs.set(ev.runId, run);
      if (this.runs.size > RUNS) this.runs.delete(this.runs.keys().next().value as string);
    }
    const v = run.view;
    v.last = Math.max(v.last, ev.timestamp);
    v.events.push({ type: ev.type, stepKey: ev.stepKey, timestamp: ev.timestamp, message: ev.message });
    // Trimmed to the latest RUN_EVENTS once twice that many: a splice per event moved the whole list each time (40,000 events of one run took 170 ms).
    if (v.events.length >= 2 * RUN_EVENTS) v.events.splice(0, v.events.length - RUN_EVENTS);
    if (ev.stepKey !== null && !run.steps.has(ev.stepKey) && isStepState(ev.type)) {
      const step: StepView = { key: ev.stepKey, state: ev.type, start: null, end: null, attempt: 0 };
      run.steps.set(ev.stepKey, step);
      v.steps.push(step);
    }
    applyStepEvent(run.steps, ev);
  }

  /** An open page: it gets the recent past now, then an update every UPDATE_MS while it stays. */
  open(res: ServerResponse): void {
    this.pages.add(res);
    res.on('close', () => {
      this.pages.delete(res);
      if (this.pages.size === 0 && this.updater) {
        clearInterval(this.updater);
        this.updater = null;
      }
    });
    write(res, this.opening(Date.now()));
    if (!this.updater) {
      this.sent = this.count;
      this.historySent = this.history.length;
      this.updater = setInterval(() => this.update(), UPDATE_MS);
      this.updater.unref();
    }
  }

  /** The latest tasks that ended, newest first, whose key, group, state or worker contains `query`. */
  recent(query: string, limit: number): TaskRow[] {
    const rows: TaskRow[] = [];
    const q = query.toLowerCase();
    for (let n = this.count - 1; n >= Math.max(0, this.count - RING) && rows.length < limit; n--) {
      const slot = n % RING;
      const key = this.keys[slot] as string;
      const known = this.source.task(key);
      const row: TaskRow = {
        key,
        group: known?.group ?? prefix(key),
        state: known?.state ?? 'forgotten',
        worker: this.workers[slot] as string,
        end: this.ends[slot] as number,
        duration: this.durations[slot] as number,
        error: this.erred[slot] === 1 ? (this.errors.get(slot) ?? null) : null,
      };
      if (q === '' || row.key.toLowerCase().includes(q) || row.group.toLowerCase().includes(q) || row.state.includes(q) || row.worker.toLowerCase().includes(q)) rows.push(row);
    }
    return rows;
  }

  /**
   * Everything recorded since `since` (ms since the epoch), for a
   * performance report: every task kept that ended since, not a sample, and
   * its groups counted from those tasks (by the time a report is written,
   * its tasks are usually forgotten).
   */
  report(since: number): Snapshot {
    let first = Math.max(0, this.count - RING);
    while (first < this.count && (this.ends[first % RING] as number) < since) first++;
    const stream: StreamEntry[] = [];
    const groups = new Map<string, GroupView>();
    for (let n = first; n < this.count; n++) {
      const e = this.entry(n);
      stream.push(e);
      let g = groups.get(e[3]);
      if (!g) groups.set(e[3], (g = { name: e[3], done: 0, erred: 0, states: byState([]) }));
      if (e[4] === 1) g.erred = ++g.states.erred;
      else g.done = ++g.states.released;
    }
    const snap = this.snapshot(stream, stream.length, 0);
    snap.groups = [...groups.values()];
    snap.history = snap.history.filter(([t]) => t >= since);
    return snap;
  }

  runsNow(): RunView[] {
    return [...this.runs.values()].map((r) => (r.view.events.length > RUN_EVENTS ? { ...r.view, events: r.view.events.slice(-RUN_EVENTS) } : r.view)).reverse();
  }

  close(): void {
    clearInterval(this.sampler);
    if (this.updater) clearInterval(this.updater);
    for (const res of this.pages) res.end();
    this.pages.clear();
  }

  private sample(now: number): void {
    this.resolveGroups();
    this.history.push([now, this.source.states()]);
    if (this.history.length > HISTORY) {
      const drop = this.history.length - HISTORY;
      this.history.splice(0, drop);
      this.historySent = Math.max(0, this.historySent - drop);
    }
  }

  private update(): void {
    const snap = this.build(this.sent, this.historySent);
    this.sent = this.count;
    this.historySent = this.history.length;
    for (const res of this.pages) write(res, snap);
  }

  /** Looks up the groups of the latest tasks ended since the last look, at most GROUPS_PER_SAMPLE. */
  private resolveGroups(): void {
    for (let n = Math.max(this.grouped, this.count - GROUPS_PER_SAMPLE, this.count - RING); n < this.count; n++) this.groupAt(n % RING);
    this.grouped = this.count;
  }

  /** The group of the task in `slot`, looked up (and kept) if not yet: its key's prefix once the scheduler forgot it. */
  private groupAt(slot: number): string {
    let g = this.groupOf[slot] as string;
    if (g === '') {
      const key = this.keys[slot] as string;
      const p = prefix(key);
      const known = this.source.task(key)?.group;
      if (known) {
        if (this.groupByPrefix.size >= 4096) this.groupByPrefix.clear();
        this.groupByPrefix.set(p, known);
      }
      g = known ?? this.groupByPrefix.get(p) ?? p;
      this.groupOf[slot] = g;
    }
    return g;
  }

  private entry(n: number): StreamEntry {
    const slot = n % RING;
    const ms = (this.durations[slot] as number) * 1000;
    return [this.workers[slot] as string, (this.ends[slot] as number) - ms, ms, this.groupAt(slot), this.erred[slot] === 1 ? 1 : 0];
  }

  /**
   * A page's first update: the tasks of the last OPEN_WINDOW_MS as a page
   * open all along would have drawn them (those the sampler looked up, and
   * the latest ones since), and how many ended in that time.
   */
  private opening(now: number): string {
    const stream: StreamEntry[] = [];
    let ended = 0;
    let first = this.count;
    while (first > Math.max(0, this.count - RING) && (this.ends[(first - 1) % RING] as number) >= now - OPEN_WINDOW_MS) first--;
    const fresh = Math.max(first, this.grouped, this.count - STREAM_PER_UPDATE);
    for (let n = first; n < this.count; n++) {
      ended++;
      if (n >= fresh || this.groupOf[n % RING] !== '') stream.push(this.entry(n));
    }
    return JSON.stringify(this.snapshot(stream, ended, 0));
  }

  /** An update: tasks recorded since `from` (at most `max`, the latest), samples since `historyFrom`. */
  private build(from: number, historyFrom: number, max = STREAM_PER_UPDATE): string {
    const first = Math.max(from, this.count - max, this.count - RING);
    const stream: StreamEntry[] = [];
    for (let n = first; n < this.count; n++) stream.push(this.entry(n));
    return JSON.stringify(this.snapshot(stream, this.count - from, historyFrom));
  }

  private snapshot(stream: StreamEntry[], ended: number, historyFrom: number): Snapshot {
    return {
      now: Date.now(),
      workers: this.source.workers(),
      states: this.source.states(),
      groups: liveGroups(this.source.groups()),
      stream,
      ended,
      history: this.history.slice(historyFrom),
    };
  }
}

/**
 * The groups that have tasks the scheduler still holds: a graph's groups
 * leave the page once its tasks are forgotten (or the cluster restarted).
 * Counted from their tasks' states, so done never exceeds the total.
 */
export function liveGroups(groups: readonly GroupCounts[]): GroupView[] {
  const out: GroupView[] = [];
  for (const g of groups) {
    let live = 0;
    for (const [state, n] of Object.entries(g.states)) if (state !== 'forgotten') live += n;
    if (live > 0) out.push({ name: g.name, done: g.states.memory + g.states.released, erred: g.states.erred, states: g.states });
  }
  return out;
}

/** A key's prefix (Dask's key_split, roughly): the part before a '-' and a hash or number. */
export function prefix(key: string): string {
  const m = /^(.*?)[-_](?:[0-9a-f]{8,}|\d+)(?:$|[-_])/.exec(key);
  return m?.[1] || key.split(/[-_]/)[0] || key;
}

/** One server-sent event; a page that cannot keep up skips updates instead of buffering them. */
function write(res: ServerResponse, json: string): void {
  if (res.writableNeedDrain) return;
  res.write(`data: ${json}\n\n`);
}
