/**
 * Step selection, in Dagster's syntax: `c` (the step), `*c` (it and every
 * step upstream), `+c` / `++c` (it and one / two levels upstream), `c*`
 * and `c+` likewise downstream; several clauses are a union. Step keys of
 * graphs have dots (`my_graph.add_one`).
 */
import { JobSpec, type InputSource, type RunConfig, type StepNode } from './definitions.ts';
import { DefinitionError, RunConfigError } from './errors.ts';

/** The run tag that keeps a run's op selection (its clauses, comma-separated): its re-executions run within it too. */
export const OP_SELECTION_TAG = 'weft/op_selection';

const CLAUSE = /^(\*|\++)?([^*+\s]+?)(\*|\++)?$/;

/** The step keys a selection names, in the job's order; a clause that names no step is an error. */
export function selectSteps(job: JobSpec, clauses: readonly string[]): string[] {
  const up = new Map<string, string[]>();
  const down = new Map<string, string[]>();
  for (const s of job.steps) {
    const ups = [...new Set(s.inputs.flatMap((i) => (i.kind === 'step' || i.kind === 'mapped' || i.kind === 'collect' ? [i.stepKey] : [])))];
    up.set(s.key, ups);
    for (const u of ups) down.set(u, [...(down.get(u) ?? []), s.key]);
  }
  const chosen = new Set<string>();
  const parts = clauses.flatMap((c) => c.split(',')).map((c) => c.trim()).filter((c) => c !== '');
  if (parts.length === 0) throw new DefinitionError('the step selection is empty: name steps, as `b`, `*c` (c and all upstream), `b+` (b and one level downstream)');
  for (const clause of parts) {
    const m = CLAUSE.exec(clause);
    const key = m?.[2];
    if (!m || !key) throw new DefinitionError(`step selection ${JSON.stringify(clause)} does not parse: write a step key with optional * or + before and after (*c, b+, ++d)`);
    if (!job.step(key)) throw new DefinitionError(`step selection ${JSON.stringify(clause)} names no step of job ${job.name} (steps: ${job.steps.slice(0, 20).map((s) => s.key).join(', ')}${job.steps.length > 20 ? ', ...' : ''})`);
    chosen.add(key);
    walk(key, m[1], up, chosen);
    walk(key, m[3], down, chosen);
  }
  return job.steps.filter((s) => chosen.has(s.key)).map((s) => s.key);
}

function walk(from: string, how: string | undefined, edges: Map<string, string[]>, into: Set<string>): void {
  if (!how) return;
  const depth = how === '*' ? Infinity : how.length;
  const seen = new Set([from]);
  let frontier = [from];
  for (let d = 0; d < depth && frontier.length > 0; d++) {
    const next: string[] = [];
    for (const k of frontier) {
      for (const n of edges.get(k) ?? []) {
        if (seen.has(n)) continue;
        seen.add(n);
        into.add(n);
        next.push(n);
      }
    }
    frontier = next;
  }
}

/** Every step downstream of `keys`, with them, in the job's order (mapped steps as their templates: through their items and collects too). */
export function withDownstream(job: JobSpec, keys: Iterable<string>): string[] {
  const chosen = new Set(keys);
  for (const s of job.steps) if (s.inputs.some((i) => (i.kind === 'step' || i.kind === 'mapped' || i.kind === 'collect') && chosen.has(i.stepKey))) chosen.add(s.key);
  return job.steps.filter((s) => chosen.has(s.key)).map((s) => s.key);
}

/**
 * A job of only the steps `clauses` select (Dagster's op selection), for a
 * run that runs just those. An input from a step left out comes from the
 * run config, `ops.OP.inputs.INPUT` (an error names it if it is not
 * there); a mapped step needs the step whose items it maps over, and a
 * collect the steps it collects.
 */
export function selectOps(job: JobSpec, clauses: readonly string[], runConfig: RunConfig): JobSpec {
  const chosen = new Set(selectSteps(job, clauses));
  const issues: { path: string; message: string }[] = [];
  const given = (runConfig.ops ?? {}) as Record<string, { inputs?: Record<string, unknown> }>;
  const steps: StepNode[] = [];
  for (const node of job.steps) {
    if (!chosen.has(node.key)) continue;
    if (node.mapped && !chosen.has(node.mapped.stepKey)) throw new DefinitionError(`the op selection takes mapped step ${node.key} without step ${node.mapped.stepKey}, whose items it maps over: select that step too (*${node.key})`);
    const inputs = node.inputs.map((i, n): InputSource => {
      if (i.kind === 'collect' && !chosen.has(i.stepKey)) throw new DefinitionError(`the op selection takes step ${node.key} without step ${i.stepKey}, whose outputs it collects: select that step too (*${node.key})`);
      if (i.kind !== 'step' || chosen.has(i.stepKey)) return i;
      const name = node.op.inputName(n);
      const inputs = given[node.op.name]?.inputs;
      if (inputs && Object.hasOwn(inputs, name)) return { kind: 'value', value: inputs[name] };
      issues.push({ path: `ops.${node.op.name}.inputs.${name}`, message: `step ${node.key} takes input ${name} from step ${i.stepKey}, which the op selection leaves out: give its value here` });
      return i;
    });
    steps.push({ ...node, inputs });
  }
  if (issues.length > 0) throw new RunConfigError(issues);
  return new JobSpec({ name: job.name, ...(job.description !== undefined ? { description: job.description } : {}), tags: { ...job.tags }, config: job.defaultRunConfig }, steps, [...job.inputs]);
}
