/** Retry policies of ops, and the name of an op's single output. */
import { DefinitionError } from './errors.ts';

export const DEFAULT_OUTPUT = 'result';

export interface RetryPolicy {
  /** Attempts after the first. */
  maxRetries: number;
  /** Seconds before a retry (default 0). */
  delay?: number;
  /** linear: delay × attempt; exponential: (2^attempt − 1) × delay. Default: a constant delay. */
  backoff?: 'linear' | 'exponential';
  /** full: a random fraction of the delay; plusMinus: the delay ± up to `delay`. */
  jitter?: 'full' | 'plusMinus';
}

export function checkRetryPolicy(where: string, p: RetryPolicy): void {
  if (!Number.isInteger(p.maxRetries) || p.maxRetries < 0) throw new DefinitionError(`${where}: retryPolicy.maxRetries must be a non-negative integer`);
  if (p.delay !== undefined && !(p.delay >= 0 && Number.isFinite(p.delay))) throw new DefinitionError(`${where}: retryPolicy.delay must be a number of seconds >= 0`);
  if (p.backoff !== undefined && p.backoff !== 'linear' && p.backoff !== 'exponential') throw new DefinitionError(`${where}: retryPolicy.backoff must be 'linear' or 'exponential'`);
  if (p.jitter !== undefined && p.jitter !== 'full' && p.jitter !== 'plusMinus') throw new DefinitionError(`${where}: retryPolicy.jitter must be 'full' or 'plusMinus'`);
}

/** Seconds to wait before retry number `attempt` (1 = the first retry), per Dagster's formulas. */
export function retryDelay(p: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const base = p.delay ?? 0;
  let d = p.backoff === 'linear' ? base * attempt : p.backoff === 'exponential' ? (2 ** attempt - 1) * base : base;
  if (p.jitter === 'full') d = random() * d;
  else if (p.jitter === 'plusMinus') d = Math.max(0, d + (random() * 2 - 1) * base);
  return d;
}
