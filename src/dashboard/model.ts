/**
 * The pages' state: the scheduler's latest figures, plus what the updates
 * add up to over time (the task stream's recent tasks, tasks per state,
 * bytes each worker fetched). Kept bounded: a page open for days holds the
 * same amount.
 */
import type { HistorySample, Snapshot, StreamEntry } from '../scheduler/dashboard/snapshot.ts';
import type { WorkerSummary } from '../protocol/messages.ts';

/** The task stream shows this much of the recent past (a page opens with it: see the feed's OPEN_WINDOW_MS). */
export const WINDOW_MS = 60_000;
const MAX_STREAM = 12_000;
const MAX_HISTORY = 600;
const MAX_TRANSFERS = 400;

/** Bytes a worker fetched from its peers between two updates: [from, to (ms), bytes]. */
export type Transfer = [from: number, to: number, bytes: number];

export interface Model {
  now: number;
  workers: WorkerSummary[];
  states: Snapshot['states'];
  groups: Snapshot['groups'];
  stream: StreamEntry[];
  /** Tasks that ended in the window (a report: in all), counted: the stream is a sample when more end than an update carries. */
  ended: number;
  /** [update time, tasks ended since the one before], over the window. */
  endedLog: [at: number, n: number][];
  history: HistorySample[];
  transfers: Map<string, Transfer[]>;
  connected: boolean;
}

export function emptyModel(): Model {
  return { now: Date.now(), workers: [], states: {}, groups: [], stream: [], ended: 0, endedLog: [], history: [], transfers: new Map(), connected: false };
}

/** The model after one update (a new object: the pages redraw from it). `keepAll`: a report's record, kept whole. */
export function apply(m: Model, s: Snapshot, keepAll = false): Model {
  const stream = m.stream.concat(s.stream);
  const cut = keepAll ? -Infinity : s.now - WINDOW_MS * 2;
  let drop = 0;
  while (drop < stream.length && (stream[drop] as StreamEntry)[1] + (stream[drop] as StreamEntry)[2] < cut) drop++;
  if (!keepAll) drop = Math.max(drop, stream.length - MAX_STREAM);
  const history = m.history.concat(s.history);
  const endedLog = m.endedLog.concat([[s.now, s.ended]]).filter(([at]) => keepAll || at >= s.now - WINDOW_MS);
  const transfers = new Map(m.transfers);
  for (const w of s.workers) {
    const before = m.workers.find((x) => x.name === w.name);
    if (!before || w.bytesFetched === undefined || before.bytesFetched === undefined || w.bytesFetched <= before.bytesFetched) continue;
    const list = (transfers.get(w.name) ?? []).concat([[m.now, s.now, w.bytesFetched - before.bytesFetched]]);
    transfers.set(w.name, list.slice(-MAX_TRANSFERS));
  }
  return {
    now: s.now,
    workers: s.workers,
    states: s.states,
    groups: s.groups,
    stream: drop > 0 ? stream.slice(drop) : stream,
    ended: endedLog.reduce((sum, [, n]) => sum + n, 0),
    endedLog,
    history: history.length > MAX_HISTORY ? history.slice(-MAX_HISTORY) : history,
    transfers,
    connected: true,
  };
}
