/** Text from strangers on its way to a log: escaped, cut, and its lines rate limited. */
import { describe, expect, it } from 'vitest';
import { RateLimitedLines, untrusted } from '../src/util/untrusted.ts';

describe('untrusted text', () => {
  it('escapes what could forge a line and cuts what is long', () => {
    expect(untrusted('a\nRUN_SUCCESS\r\u0000"\\')).toBe('a\\nRUN_SUCCESS\\r\\u0000\\"\\\\');
    expect(untrusted('x'.repeat(1_000_000))).toBe(`${'x'.repeat(120)}... (999880 more characters)`);
    expect(untrusted(42)).toBe('42');
  });

  it('lets a burst of lines through per window, then counts the rest and says how many', () => {
    const lines: string[] = [];
    const limited = new RateLimitedLines((l) => lines.push(l), 'refusals', 3, 10_000);
    for (let i = 0; i < 10; i++) limited.line(`refused ${i}`, 1000 + i);
    expect(lines).toEqual(['refused 0', 'refused 1', 'refused 2']);
    // The next window: the count of the last, then its own burst.
    limited.line('refused 10', 11_000);
    expect(lines).toEqual(['refused 0', 'refused 1', 'refused 2', '7 more refusals in 10 s, not logged one by one', 'refused 10']);
    limited.flush();
    expect(lines).toHaveLength(5);
  });
});
