/**
 * Empty arrays that start with the kind of elements they will hold.
 *
 * A fresh `[]` starts out holding small integers only. Code that V8 optimizes
 * while it fills such arrays checks that each value pushed is one, so the
 * first string, object or fraction pushed into the next fresh array throws
 * that code away (a deoptimization) and it is compiled again. Hot paths that
 * build a new message per batch hit this once per site in a cold process,
 * recompiling their largest functions. An array sliced from one that already
 * holds the right kind keeps that kind, so nothing needs to change later.
 */
const OBJECTS: readonly unknown[] = [null];
const FRACTIONS: readonly number[] = [0.5];

/** An empty array for strings, objects or arrays. */
export function objectList<T>(): T[] {
  return OBJECTS.slice(0, 0) as T[];
}

/** An empty array for numbers that are not all small integers (durations, seconds). */
export function fractionList(): number[] {
  return FRACTIONS.slice(0, 0);
}
