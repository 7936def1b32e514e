// tasks.ts: functions the workers run. They import this file themselves.
export function inc(x: number): number {
  return x + 1;
}

export function load(part: string): number[] {
  return Array.from({ length: 4 }, (_, i) => part.length * 10 + i);
}

export function merge(p: { left: number[]; right: number[] }): number {
  return [...p.left, ...p.right].reduce((a, b) => a + b, 0);
}
