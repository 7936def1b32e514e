/**
 * The definitions API, Dagster's model in TypeScript idiom: ops, graphs that
 * compose them, jobs that run them, and assets.
 *
 *   const one = op({ name: 'one' }, () => 1);
 *   const addOne = op({ name: 'addOne' }, (_ctx, x: number) => x + 1);
 *   export const myJob = job({ name: 'my_job' }, () => {
 *     addOne(one());
 *   });
 *
 * A job's body runs once, when the job is defined: calling an op inside it
 * records a step and returns a handle to the step's output, which becomes
 * another step's input. Jobs are therefore plain data (steps and how their
 * outputs feed each other), the same in every process that imports the
 * module that defines them.
 *
 * This module is the bottom of the job layer: what a job is, as data. The
 * jobs users define (job.ts) add how to run them, which sits above the plan
 * and the executors.
 */
import type { z } from 'zod';
import { DefinitionError } from './errors.ts';
import { checkRetryPolicy, DEFAULT_OUTPUT, type RetryPolicy } from './retry.ts';

export { DEFAULT_OUTPUT, type RetryPolicy } from './retry.ts';

// ---------------------------------------------------------------- policies and contexts

export interface OutDef {
  /** An optional output may not be produced; steps that need it are then skipped. */
  optional?: boolean;
  description?: string;
  /** A dynamic output (dynamicOut): the op emits it many times, each under a mapping key. */
  dynamic?: boolean;
}

/** An output of an op with several outputs. */
export function out(opts: Omit<OutDef, 'dynamic'> = {}): OutDef {
  return { ...opts };
}

/**
 * A dynamic output, Dagster's DynamicOut: the op yields dynamicOutput(key,
 * value) (or calls ctx.emit) once per item it finds; `.map(fn)` in a job
 * body runs fn's ops once per key, as steps `op[key]` that start as soon as
 * their item is emitted, and `.collect()` gathers their results in a list.
 */
export function dynamicOut(opts: Omit<OutDef, 'dynamic' | 'optional'> = {}): OutDef & { dynamic: true } {
  return { ...opts, dynamic: true };
}

export interface StepLog {
  debug(message: string, data?: Record<string, unknown>): void;
  info(message: string, data?: Record<string, unknown>): void;
  warn(message: string, data?: Record<string, unknown>): void;
  error(message: string, data?: Record<string, unknown>): void;
}

/** What an op's compute function gets first. */
export interface OpContext<C = unknown> {
  /** Logs become events of the run (and lines of `weft run`). */
  readonly log: StepLog;
  /** The op's config from the run config, parsed with its schema. */
  readonly config: C;
  readonly runId: string;
  readonly stepKey: string;
  readonly opName: string;
  /** 0 for the first attempt, then 1, 2, ... on retries. */
  readonly attempt: number;
  /** Aborted when the run is cancelled: long ops should stop. */
  readonly signal: AbortSignal;
  /**
   * Emits an item of a dynamic output under a mapping key (letters, digits
   * and _; unique within the output), as yielding dynamicOutput(key, value)
   * does: for ops that find their items in callbacks. `output`: which
   * dynamic output (default: the op's only one).
   */
  emit(key: string, value: unknown, opts?: { output?: string }): void;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- ops take any inputs; they are checked at run time
export type OpFn<C = any> = (ctx: OpContext<C>, ...inputs: any[]) => unknown;

// ---------------------------------------------------------------- handles and nodes

/** An output of a step, as seen while composing a job: pass it to another op. */
export class OutputHandle {
  constructor(
    readonly stepKey: string,
    readonly output: string,
  ) {}
}

/**
 * A dynamic output of a step, while composing a job: map over it. `fn`'s
 * ops run once per emitted item (it gets the item); what fn returns (an
 * output of one of them) can be mapped again or collected.
 */
export class DynamicOutputHandle {
  constructor(
    readonly stepKey: string,
    readonly output: string,
  ) {}

  map(fn: (item: OutputHandle) => unknown): MappedOutputs {
    return currentScope('.map').mapOver(this, fn);
  }

  /** The items themselves as one input: a list, in the order they were emitted. */
  collect(): CollectedOutputs {
    return new CollectedOutputs(new OutputHandle(this.stepKey, this.output), this, true);
  }
}

/** The outputs of mapped steps, one per mapping key: map them again, or collect them into a list. */
export class MappedOutputs {
  constructor(
    /** The output of the mapped step fn returned (undefined: it returned none, so there is nothing to collect). */
    readonly handle: OutputHandle | undefined,
    /** The dynamic output the steps are mapped over. */
    readonly over: DynamicOutputHandle,
  ) {}

  map(fn: (item: OutputHandle) => unknown): MappedOutputs {
    return currentScope('.map').mapOver(this.over, () => fn(this.need('map')));
  }

  /** The mapped outputs as one input: a list, in the order their keys were emitted. */
  collect(): CollectedOutputs {
    const h = this.need('collect');
    // fn returned its item as it was: the items themselves.
    return h instanceof MappedItem ? this.over.collect() : new CollectedOutputs(h, this.over);
  }

  private need(what: string): OutputHandle {
    if (!(this.handle instanceof OutputHandle)) throw new DefinitionError(`.${what}() needs the function given to .map() to return an output of an op it called`);
    return this.handle;
  }
}

/** Mapped outputs collected into one list (an input of a step outside the map). */
export class CollectedOutputs {
  constructor(
    readonly handle: OutputHandle,
    readonly over: DynamicOutputHandle,
    /** The dynamic output's own items (no mapped step in between). */
    readonly items = false,
  ) {}
}

/** An input of a job made from a graph: its value comes from `inputValues` when the job runs. */
export class JobInputHandle {
  constructor(readonly name: string) {}
}

export type InputSource =
  | { kind: 'step'; stepKey: string; output: string }
  | { kind: 'value'; value: unknown }
  | { kind: 'job-input'; name: string }
  /** A mapped step's item: the emission of dynamic output `output` of step `stepKey` under this step's mapping key. */
  | { kind: 'mapped'; stepKey: string; output: string }
  /**
   * The outputs of every copy of mapped step `stepKey`, as a list (known
   * once the step it is mapped over has ended); `items`: the items of
   * dynamic output `output` of step `stepKey` themselves.
   */
  | { kind: 'collect'; stepKey: string; output: string; items?: true }
  /** A collect input, resolved: these outputs, in this order (plan.ts). */
  | { kind: 'list'; items: readonly { stepKey: string; output: string }[] };

/** One invocation of an op in a job: a step of its runs. */
export interface StepNode {
  readonly key: string;
  readonly op: OpDefinition;
  readonly inputs: readonly InputSource[];
  /**
   * A mapped step: the dynamic output it is mapped over. The job holds it
   * as a template; a run makes a copy `key[mappingKey]` per emitted item
   * (plan.ts).
   */
  readonly mapped?: { readonly stepKey: string; readonly output: string };
}

// ---------------------------------------------------------------- ops

export interface OpOptions<C> {
  name: string;
  description?: string;
  /** Schema of the op's config (`runConfig.ops.NAME.config`). */
  config?: z.ZodType<C>;
  tags?: Record<string, string>;
  retryPolicy?: RetryPolicy;
  /** Named outputs; the compute function returns an object with these keys. Default: one output, `result`. */
  outs?: Record<string, OutDef>;
  /** The one output, `result`, described (`out: dynamicOut()`); not with `outs`. */
  out?: OutDef;
  /** Names of the inputs, for events and errors (default input0, input1, ...). */
  ins?: string[];
}

const NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

export class OpDefinition<C = unknown> {
  readonly outs: Record<string, OutDef>;
  /** Whether the op declared named outputs (its result is an object of them). */
  readonly multipleOutputs: boolean;

  constructor(
    readonly name: string,
    readonly fn: OpFn<C>,
    readonly configSchema: z.ZodType<C> | undefined,
    readonly tags: Readonly<Record<string, string>>,
    readonly retryPolicy: RetryPolicy | undefined,
    outs: Record<string, OutDef> | undefined,
    readonly ins: readonly string[] | undefined,
    readonly description: string | undefined,
    single?: OutDef,
  ) {
    checkName('op', name);
    if (typeof fn !== 'function') throw new DefinitionError(`op ${name} needs a compute function (ctx, ...inputs) => value`);
    if (outs !== undefined && Object.keys(outs).length === 0) throw new DefinitionError(`op ${name}: outs is empty; leave it out for a single output`);
    for (const o of Object.keys(outs ?? {})) checkName(`output of op ${name}`, o);
    if (retryPolicy) checkRetryPolicy(`op ${name}`, retryPolicy);
    this.multipleOutputs = outs !== undefined;
    this.outs = outs ?? { [DEFAULT_OUTPUT]: { ...single } };
    this.dynamicOutputs = new Set(Object.entries(this.outs).filter(([, d]) => d.dynamic).map(([n]) => n));
    for (const d of this.dynamicOutputs) if (this.outs[d]?.optional) throw new DefinitionError(`op ${name}: dynamic output ${d} cannot be optional (emitting no item is how it is left empty)`);
  }

  /** The outputs it emits under mapping keys (dynamicOut). */
  readonly dynamicOutputs: ReadonlySet<string>;

  inputName(i: number): string {
    return this.ins?.[i] ?? `input${i}`;
  }
}

/** An op as used in a job body: call it with its inputs. */
export type Op<R> = ((...inputs: unknown[]) => R) & { readonly definition: OpDefinition };

/** Defines an op. With `outs`, calling it in a body gives one handle per output; a dynamic output's handle maps. */
export function op<C = unknown, const O extends Record<string, OutDef> = Record<string, OutDef>>(opts: OpOptions<C> & { outs: O }, fn: OpFn<C>): Op<{ [K in keyof O]: O[K] extends { dynamic: true } ? DynamicOutputHandle : OutputHandle }>;
export function op<C = unknown>(opts: OpOptions<C> & { out: OutDef & { dynamic: true } }, fn: OpFn<C>): Op<DynamicOutputHandle>;
export function op<C = unknown>(opts: OpOptions<C>, fn: OpFn<C>): Op<OutputHandle>;
export function op<C>(opts: OpOptions<C>, fn: OpFn<C>): Op<unknown> {
  if (opts.out && opts.outs) throw new DefinitionError(`op ${opts.name}: give out (one output) or outs (several), not both`);
  const def = new OpDefinition<C>(opts.name, fn, opts.config, { ...opts.tags }, opts.retryPolicy, opts.outs, opts.ins, opts.description, opts.out);
  return invocable(def as OpDefinition);
}

function invocable(def: OpDefinition): Op<unknown> {
  const call = (...args: unknown[]): unknown => {
    const scope = currentScope(`op ${def.name}`);
    return scope.addStep(def, args);
  };
  return Object.assign(call, { definition: def });
}

// ---------------------------------------------------------------- composition

/**
 * Where in a job body a step is recorded: outside any map (''), or inside
 * `.map()` over a dynamic output, inside maybe another (ids nest as paths).
 */
interface MapScope {
  readonly id: string;
  readonly over: DynamicOutputHandle;
}

/** What every scope of one body shares: the map being recorded, and the map each step was recorded in. */
interface Recording {
  map: MapScope | null;
  readonly mapOf: Map<string, string>;
}

/** A handle's step was recorded where the current step can use it: in the same map, or in one around it. */
function within(inner: string, outer: string): boolean {
  return outer === '' || inner === outer || inner.startsWith(`${outer}/`);
}

/** The body being recorded: steps, with keys unique in the job. */
class Scope {
  private used = new Map<string, number>();

  constructor(
    readonly steps: StepNode[],
    readonly prefix: string,
    private readonly keys: Set<string>,
    private readonly rec: Recording = { map: null, mapOf: new Map() },
  ) {}

  uniqueKey(name: string): string {
    const n = (this.used.get(name) ?? 0) + 1;
    this.used.set(name, n);
    let key = `${this.prefix}${n === 1 ? name : `${name}_${n}`}`;
    // Aliases may collide with a name used literally (an op called "a_2"): count on.
    while (this.keys.has(key)) {
      const m = (this.used.get(name) ?? 0) + 1;
      this.used.set(name, m);
      key = `${this.prefix}${name}_${m}`;
    }
    this.keys.add(key);
    return key;
  }

  addStep(def: OpDefinition, args: unknown[]): unknown {
    const key = this.uniqueKey(def.name);
    const required = Math.max(0, def.fn.length - 1);
    if (def.ins && args.length !== def.ins.length) throw new DefinitionError(`op ${def.name} takes ${def.ins.length} input(s) (${def.ins.join(', ')}) but step ${key} was given ${args.length}`);
    if (args.length < required) throw new DefinitionError(`op ${def.name} needs ${required} input(s) but step ${key} was given ${args.length}`);
    const here = this.rec.map?.id ?? '';
    const inputs = args.map((a, i) => this.inputSource(a, `input ${def.inputName(i)} of step ${key}`, here));
    const map = this.rec.map;
    this.steps.push(map ? { key, op: def, inputs, mapped: { stepKey: map.over.stepKey, output: map.over.output } } : { key, op: def, inputs });
    this.rec.mapOf.set(key, here);
    const handle = (o: string): OutputHandle | DynamicOutputHandle => (def.dynamicOutputs.has(o) ? new DynamicOutputHandle(key, o) : new OutputHandle(key, o));
    if (!def.multipleOutputs) return handle(DEFAULT_OUTPUT);
    const handles: Record<string, OutputHandle | DynamicOutputHandle> = {};
    for (const o of Object.keys(def.outs)) handles[o] = handle(o);
    return handles;
  }

  private inputSource(v: unknown, where: string, here: string): InputSource {
    if (v instanceof MappedItem) return { kind: 'mapped', stepKey: v.stepKey, output: v.output };
    if (v instanceof OutputHandle) {
      const at = this.rec.mapOf.get(v.stepKey) ?? '';
      if (!within(here, at)) throw new DefinitionError(`${where} is an output of step ${v.stepKey}, which is mapped: outside its .map(), use .collect() to take its outputs as a list`);
      return { kind: 'step', stepKey: v.stepKey, output: v.output };
    }
    if (v instanceof DynamicOutputHandle) throw new DefinitionError(`${where} is dynamic output ${v.output} of step ${v.stepKey}: map over it (.map(fn)) to use its items`);
    if (v instanceof MappedOutputs) throw new DefinitionError(`${where} is the outputs of mapped steps: use .collect() to take them as a list`);
    if (v instanceof CollectedOutputs && v.items) {
      if ((this.rec.mapOf.get(v.handle.stepKey) ?? '') !== here) throw new DefinitionError(`${where} collects the items of step ${v.handle.stepKey}, which works only where that step was called`);
      return { kind: 'collect', stepKey: v.handle.stepKey, output: v.handle.output, items: true };
    }
    if (v instanceof CollectedOutputs) {
      const at = this.rec.mapOf.get(v.handle.stepKey) ?? '';
      const outer = at.slice(0, Math.max(0, at.lastIndexOf('/')));
      if (outer !== here) throw new DefinitionError(`${where} collects the outputs of mapped step ${v.handle.stepKey}, which works only just outside its .map()`);
      return { kind: 'collect', stepKey: v.handle.stepKey, output: v.handle.output };
    }
    return inputSource(v, where);
  }

  /** `.map(fn)` of a dynamic output: fn's ops are recorded as mapped over it. */
  mapOver(over: DynamicOutputHandle, fn: (item: OutputHandle) => unknown): MappedOutputs {
    const outer = this.rec.map;
    const at = this.rec.mapOf.get(over.stepKey) ?? '';
    if (!within(outer?.id ?? '', at)) throw new DefinitionError(`dynamic output ${over.output} of step ${over.stepKey} is mapped: map over it inside the .map() it was made in`);
    this.rec.map = { id: `${at}/${over.stepKey}\u0000${over.output}`, over };
    try {
      const returned = fn(new MappedItem(over.stepKey, over.output));
      if (returned instanceof Promise) throw new DefinitionError('the function given to .map() must be synchronous: it only wires ops together');
      return new MappedOutputs(returned instanceof OutputHandle ? returned : undefined, over);
    } finally {
      this.rec.map = outer;
    }
  }

  child(name: string): Scope {
    return new Scope(this.steps, `${this.uniqueKey(name)}.`, this.keys, this.rec);
  }
}

/** The item a `.map()` function gets: each copy of its steps takes its own. */
class MappedItem extends OutputHandle {}

let scope: Scope | null = null;

function currentScope(what: string): Scope {
  if (!scope) throw new DefinitionError(`${what} was called outside a job or graph body; call it inside job({ name }, () => { ... }) or graph(...)`);
  return scope;
}

function inputSource(v: unknown, where: string): InputSource {
  if (v instanceof OutputHandle) return { kind: 'step', stepKey: v.stepKey, output: v.output };
  if (v instanceof JobInputHandle) return { kind: 'job-input', name: v.name };
  if (typeof v === 'function' && 'definition' in v) throw new DefinitionError(`${where} is an op itself; call it to use its output`);
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.values(v).some((x) => x instanceof OutputHandle || x instanceof DynamicOutputHandle)) {
    throw new DefinitionError(`${where} is the set of outputs of an op with several outputs; pass one of them (${Object.keys(v).join(', ')})`);
  }
  return { kind: 'value', value: v };
}

/** Runs a job body, recording the steps its op calls make. */
export function recordSteps(body: () => unknown): { steps: StepNode[]; returned: unknown } {
  const outer = scope;
  const steps: StepNode[] = [];
  scope = new Scope(steps, '', new Set());
  try {
    const returned = body();
    if (returned instanceof Promise) throw new DefinitionError('a job or graph body must be synchronous: it only wires ops together');
    return { steps, returned };
  } finally {
    scope = outer;
  }
}

// ---------------------------------------------------------------- jobs

/** Run config: `{ ops: { NAME: { config } }, execution: { config } }`. */
export interface RunConfig {
  /** Per op: its config, and (a run of an op selection) the values of inputs whose steps are left out. */
  ops?: Record<string, { config?: unknown; inputs?: Record<string, unknown> }>;
  execution?: { config?: unknown };
}

/** What a job is besides its steps (job.ts adds its executor). */
export interface JobSpecOptions {
  name: string;
  description?: string;
  tags?: Record<string, string>;
  /** Default run config, merged under the run config given at launch. */
  config?: RunConfig;
  /** Run only these steps (Dagster's op selection: `toJob({ opSelection })`), unless a launch names others. */
  opSelection?: readonly string[];
}

/**
 * A job as data: its steps and how their outputs feed each other. The plan,
 * the run config and the executors need no more than this; users define
 * JobDefinitions (job.ts), which are JobSpecs that can also run themselves.
 */
export class JobSpec {
  readonly name: string;
  readonly description: string | undefined;
  readonly tags: Readonly<Record<string, string>>;
  readonly defaultRunConfig: RunConfig;
  /** Names of the job's own inputs (a job made from a graph with parameters). */
  readonly inputs: readonly string[];
  /** Its runs run only these steps (see JobSpecOptions.opSelection). */
  readonly opSelection: readonly string[] | undefined;
  private built: { steps: readonly StepNode[]; byKey: Map<string, StepNode> } | null = null;
  private readonly body: (() => StepNode[]) | null;

  /** `steps` may be a function that records them, called once on first use when job bodies are deferred. */
  constructor(opts: JobSpecOptions, steps: StepNode[] | (() => StepNode[]), inputs: string[]) {
    checkName('job', opts.name);
    this.name = opts.name;
    this.description = opts.description;
    this.tags = { ...opts.tags };
    this.defaultRunConfig = opts.config ?? {};
    this.inputs = inputs;
    this.opSelection = opts.opSelection ? [...opts.opSelection] : undefined;
    this.body = typeof steps === 'function' ? steps : null;
    if (typeof steps !== 'function') this.built = this.index(steps);
    else if (!deferBodies) this.built = this.index(steps());
  }

  /** The job's steps, in an order where each comes after the steps it takes inputs from. */
  get steps(): readonly StepNode[] {
    return this.materialize().steps;
  }

  step(key: string): StepNode | undefined {
    return this.materialize().byKey.get(key);
  }

  private materialize(): { steps: readonly StepNode[]; byKey: Map<string, StepNode> } {
    this.built ??= this.index((this.body as () => StepNode[])());
    return this.built;
  }

  private index(steps: StepNode[]): { steps: readonly StepNode[]; byKey: Map<string, StepNode> } {
    if (steps.length === 0) throw new DefinitionError(`job ${this.name} has no steps: call ops in its body`);
    return { steps, byKey: new Map(steps.map((s) => [s.key, s])) };
  }
}

/**
 * Step processes defer job bodies: each builds only the job it runs, not
 * every job of its code location (see step/prelude.ts). Elsewhere bodies run
 * when the job is defined, so wiring errors show at once.
 */
let deferBodies = false;

export function deferJobBodies(): void {
  deferBodies = true;
}

// ---------------------------------------------------------------- graphs

export interface GraphOptions {
  name: string;
  description?: string;
  /** Names of the graph's inputs (default input0, input1, ...). */
  ins?: string[];
}

/** A graph being composed: called in a body, or recorded as the steps of a job of its own (job.ts's `toJob`). */
export interface ComposedGraph<R> {
  call: (...inputs: unknown[]) => R;
  /** The names of the inputs of a job made from the graph. */
  inputs: string[];
  /** Records the steps of such a job, under their plain op names (no graph prefix). */
  jobSteps: () => StepNode[];
}

/**
 * Composes ops and graphs. Called in a body, its steps join the job under
 * keys prefixed with the graph's name (`my_graph.add_one`); it returns what
 * its body returns.
 */
export function composeGraph<R>(opts: GraphOptions, body: (...inputs: never[]) => R): ComposedGraph<R> {
  checkName('graph', opts.name);
  const arity = opts.ins?.length ?? body.length;
  const call = (...args: unknown[]): R => {
    const outer = currentScope(`graph ${opts.name}`);
    if (args.length !== arity) throw new DefinitionError(`graph ${opts.name} takes ${arity} input(s) but was given ${args.length}`);
    scope = outer.child(opts.name);
    try {
      const returned = (body as (...a: unknown[]) => R)(...args);
      if (returned instanceof Promise) throw new DefinitionError(`the body of graph ${opts.name} must be synchronous`);
      return returned;
    } finally {
      scope = outer;
    }
  };
  const inputs = Array.from({ length: arity }, (_, i) => opts.ins?.[i] ?? `input${i}`);
  const jobSteps = (): StepNode[] => {
    const { steps } = recordSteps(() => call(...inputs.map((n) => new JobInputHandle(n))));
    const prefix = `${opts.name}.`;
    return steps.map((s) => ({ ...s, key: s.key.startsWith(prefix) ? s.key.slice(prefix.length) : s.key, inputs: s.inputs.map((i) => (i.kind === 'step' && i.stepKey.startsWith(prefix) ? { ...i, stepKey: i.stepKey.slice(prefix.length) } : i)) }));
  };
  return { call, inputs, jobSteps };
}

// ---------------------------------------------------------------- assets

export interface AssetOptions<C> {
  name: string;
  description?: string;
  /** Upstream assets, whose values are the compute function's inputs, in this order. */
  deps?: (AssetDefinition | string)[];
  config?: z.ZodType<C>;
  tags?: Record<string, string>;
  retryPolicy?: RetryPolicy;
}

export class AssetDefinition {
  readonly deps: readonly string[];
  readonly op: OpDefinition;

  constructor(name: string, deps: string[], opDef: OpDefinition) {
    this.deps = deps;
    this.op = opDef;
    if (new Set(deps).size !== deps.length) throw new DefinitionError(`asset ${name} lists an upstream asset twice`);
  }

  get name(): string {
    return this.op.name;
  }
}

/** Defines an asset: a value computed from its upstream assets. */
export function asset<C = unknown>(opts: AssetOptions<C>, fn: OpFn<C>): AssetDefinition {
  const deps = (opts.deps ?? []).map((d) => (typeof d === 'string' ? d : d.name));
  const opDef = new OpDefinition<C>(opts.name, fn, opts.config, { ...opts.tags }, opts.retryPolicy, undefined, deps, opts.description);
  return new AssetDefinition(opts.name, deps, opDef as OpDefinition);
}

/**
 * The steps of a job over assets: the selection ('*' for every asset, or
 * asset names) and its upstream assets (weft keeps no asset storage between
 * runs), upstream first.
 */
export function assetJobSteps(jobName: string, selection: '*' | readonly string[], assets: readonly AssetDefinition[]): StepNode[] {
  const byName = new Map(assets.map((a) => [a.name, a]));
  const chosen = new Set<string>();
  const visit = (name: string, from: string): void => {
    if (chosen.has(name)) return;
    const a = byName.get(name);
    if (!a) throw new DefinitionError(`asset job ${jobName}: ${from} names asset ${name}, which is not among the Definitions' assets (${[...byName.keys()].join(', ') || 'none'})`);
    chosen.add(name);
    for (const d of a.deps) visit(d, `asset ${name}`);
  };
  if (selection === '*') for (const a of assets) visit(a.name, 'the selection');
  else for (const n of selection) visit(n, 'the selection');
  // Upstream first: a depth-first order over the chosen assets.
  const ordered: AssetDefinition[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const place = (a: AssetDefinition, path: string[]): void => {
    const s = state.get(a.name);
    if (s === 'done') return;
    if (s === 'visiting') throw new DefinitionError(`assets depend on each other in a cycle: ${[...path, a.name].join(' -> ')}`);
    state.set(a.name, 'visiting');
    for (const d of a.deps) place(byName.get(d) as AssetDefinition, [...path, a.name]);
    state.set(a.name, 'done');
    ordered.push(a);
  };
  for (const a of assets) if (chosen.has(a.name)) place(a, []);
  return ordered.map((a) => ({ key: a.name, op: a.op, inputs: a.deps.map((d) => ({ kind: 'step', stepKey: d, output: DEFAULT_OUTPUT })) }));
}

// ---------------------------------------------------------------- checks

export function checkName(what: string, name: unknown): void {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new DefinitionError(`${what} name ${JSON.stringify(name)} is not valid: use letters, digits, _ and -, starting with a letter or _`);
  }
}
