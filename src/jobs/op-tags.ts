/**
 * Op tags whose value is JSON (`weft/resources`, `weft/docker`, `weft/k8s`),
 * parsed and checked in one place.
 */
import type { z } from 'zod';
import { DefinitionError } from './errors.ts';
import type { PlannedStep } from './plan.ts';

/**
 * The tag's value on the step's op, checked with `schema`; undefined when
 * the op has no such tag. A bad one is a DefinitionError naming the op, the
 * tag, what it must be (`expected`) and what is wrong.
 */
export function jsonTag<T>(step: PlannedStep, tag: string, schema: z.ZodType<T>, expected: string): T | undefined {
  const raw = step.tags[tag];
  if (raw === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new DefinitionError(`op ${step.node.op.name}: tag ${tag} must be ${expected}; it is not JSON (${(err as Error).message}; got ${JSON.stringify(raw)})`);
  }
  const r = schema.safeParse(parsed);
  if (!r.success) throw new DefinitionError(`op ${step.node.op.name}: tag ${tag} must be ${expected}: ${r.error.issues.map((i) => `${i.path.join('.') || '(value)'}: ${i.message}`).join('; ')} (got ${JSON.stringify(raw)})`);
  return r.data;
}
