/** Task-event topics: clients subscribe; workers' task events go on to the subscribers, in order. */
import type { ClientRecord, WorkerRecord } from './task-state.ts';
import type { SchedulerCore } from './core.ts';

/** Adds a client to a topic's subscribers. */
export function subscribe(s: SchedulerCore, c: ClientRecord, topic: string): void {
  c.topics ??= new Set();
  if (c.topics.has(topic)) return;
  c.topics.add(topic);
  const list = s.subscribers.get(topic);
  if (list) list.push(c);
  else s.subscribers.set(topic, [c]);
}

/** Removes a client from a topic's subscribers. */
export function unsubscribe(s: SchedulerCore, c: ClientRecord, topic: string): void {
  if (!c.topics?.delete(topic)) return;
  const list = s.subscribers.get(topic);
  if (!list) return;
  const rest = list.filter((x) => x !== c);
  if (rest.length > 0) s.subscribers.set(topic, rest);
  else s.subscribers.delete(topic);
}

/** Passes task events on to the clients subscribed to their topics; an event nobody listens to is dropped. */
export function taskEvents(s: SchedulerCore, w: WorkerRecord, topics: readonly string[], data: readonly Uint8Array[]): void {
  if (topics.length !== data.length) {
    s.logs.push({ level: 'warn', msg: 'task events dropped: topics and data differ in length', data: { worker: w.name, topics: topics.length, data: data.length } });
    return;
  }
  for (let i = 0; i < topics.length; i++) {
    const subs = s.subscribers.get(topics[i] as string);
    if (subs) for (const c of subs) s.outbox.event(c.id, topics[i] as string, data[i] as Uint8Array);
  }
}
