/** Numbers as people read them. */

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

export function seconds(s: number): string {
  if (s < 1e-3) return `${(s * 1e6).toFixed(0)} µs`;
  if (s < 1) return `${(s * 1e3).toFixed(s < 0.01 ? 2 : 0)} ms`;
  if (s < 120) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  return `${(s / 60).toFixed(1)} min`;
}

export function count(n: number): string {
  return n.toLocaleString('en-US');
}

export function time(ms: number): string {
  return new Date(ms).toLocaleTimeString('en-GB');
}

/** A steady colour per task group: the same name gets the same hue on every page and in every report. */
export function groupColor(name: string): string {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  return `hsl(${h % 360} 65% 52%)`;
}

export const STATE_COLORS: Record<string, string> = {
  waiting: '#9ca3af',
  queued: '#c4b5fd',
  'no-worker': '#f59e0b',
  processing: '#22c55e',
  memory: '#3b82f6',
  erred: '#dc2626',
  released: '#e5e7eb',
};
