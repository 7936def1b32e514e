/**
 * Every message weft sends, as zod schemas. A frame from the network is
 * decoded and each message in it parsed with the schema for its direction;
 * anything else is a protocol error for that one connection.
 *
 * Hot-path messages are columnar (`finished`, `in-memory`, `free`): one
 * message carries many keys, so a batch of a thousand results is one object.
 */
import type * as Zod from 'zod';
import { lazySchemas } from '../util/zod.ts';
/** 2: number columns of hot messages travel as typed arrays, long key lists as one string (codec.ts); 3: tickets (GraphMsg.tickets); 4: task events (subscribe, task-events, events). */
export const PROTOCOL_VERSION = 6;
export const MAX_KEY = 4096;

/** Whether a key has a length the scheduler accepts (1 to MAX_KEY characters). */
export function keyFits(k: string): boolean {
  return k.length > 0 && k.length <= MAX_KEY;
}
/*
 * Task events: small messages a running task publishes on a topic (see
 * worker/task-context.ts), passed by the scheduler to the clients subscribed
 * to it. Results never travel this way; an event is capped at MAX_EVENT_BYTES.
 */
export const MAX_TOPIC = 256;
export const MAX_EVENT_BYTES = 1024 * 1024;
/** The largest value a Variable or Queue holds, encoded (scheduler/coordination.ts). */
export const MAX_SYNC_VALUE_BYTES = 1024 * 1024;

/** The consistency of a graph's columns; returns a description of the first problem, or null. */
export function checkGraphColumns(g: GraphMsg): string | null {
  const n = g.keys.length;
  if (g.fn.length !== n || g.argEnds.length !== n || g.depCounts.length !== n) return `columns fn, argEnds, depCounts must have one entry per key (${n})`;
  let prev = 0;
  let deps = 0;
  for (let i = 0; i < n; i++) {
    const end = g.argEnds[i] as number;
    if (end < prev || end > g.args.length) return `argEnds[${i}] = ${end} is out of order or past the end of args`;
    prev = end;
    if ((g.fn[i] as number) >= g.fnTable.length) return `fn[${i}] = ${g.fn[i]} is not an index of fnTable`;
    deps += g.depCounts[i] as number;
  }
  if (deps !== g.deps.length) return `depCounts add up to ${deps} but deps has ${g.deps.length} keys`;
  for (const e of g.extra) if (e.i >= n) return `extra entry for task ${e.i}, but the graph has ${n} tasks`;
  for (const w of g.wants) if (w >= n) return `wants index ${w} is not a task of the graph`;
  if (g.tickets.length !== g.wants.length) return `tickets must have one entry per wants entry (${g.wants.length})`;
  return null;
}

/** Column consistency of a compute message; a description of the first problem, or null. */
export function checkComputeColumns(m: ComputeMsg): string | null {
  const n = m.keys.length;
  for (const [name, col] of [['runs', m.runs], ['fns', m.fns], ['argEnds', m.argEnds], ['orders', m.orders], ['priorities', m.priorities], ['depCounts', m.depCounts]] as const) {
    if (col.length !== n) return `column ${name} has ${col.length} entries for ${n} keys`;
  }
  let prev = 0;
  for (let i = 0; i < n; i++) {
    const end = m.argEnds[i] as number;
    if (end < prev || end > m.args.length) return `argEnds[${i}] = ${end} is out of order or past the end of args`;
    prev = end;
  }
  const deps = m.depCounts.reduce((a, b) => a + b, 0);
  if (m.deps.length !== deps || m.who.length !== deps || m.sizes.length !== deps) return `depCounts add up to ${deps}, but deps/who/sizes have ${m.deps.length}/${m.who.length}/${m.sizes.length}`;
  for (const [i] of m.resources) if (i >= n) return `resources for task ${i}, but there are ${n} tasks`;
  return null;
}

/** Every message schema, built on first use (util/zod.ts: importing weft does not load zod). */
export const messageSchemas = lazySchemas((z) => {


  const key = z.string().min(1).max(MAX_KEY);


  /*
   * Hot columns (keys, counts, binary values) are checked with one loop each
   * instead of a zod schema per element: as strict, a fraction of the cost, and
   * the error still names the column and the item.
   */
  function columnCheck<T>(what: string, ok: (v: unknown) => boolean): Zod.ZodType<T[]> {
    const problem = (v: unknown): string | null => {
      if (!Array.isArray(v)) return `expected an array of ${what}`;
      for (let i = 0; i < v.length; i++) if (!ok(v[i])) return `item ${i}: expected ${what}`;
      return null;
    };
    return z.custom<T[]>((v) => problem(v) === null, { error: (iss) => problem(iss.input) ?? `expected an array of ${what}` });
  }
  const keys = columnCheck<string>(`keys (non-empty strings of at most ${MAX_KEY} characters)`, (x) => typeof x === 'string' && keyFits(x));
  const counts = columnCheck<number>('non-negative integers', (x) => Number.isSafeInteger(x) && (x as number) >= 0);
  const stringLists = columnCheck<string[]>('lists of strings', (x) => Array.isArray(x) && x.every((y) => typeof y === 'string'));
  const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected binary data');

  /*
   * Typed columns: msgpack carries a typed array as one block of bytes, so a
   * column of a thousand numbers costs the encoder and decoder one copy, not a
   * thousand values. Uint32Array holds indices and lengths; Float64Array holds
   * numbers that may pass 2^32 (run counters, byte sizes) or are not integers.
   */
  function typedCheck<T extends Uint32Array | Float64Array>(Type: new (n: number) => T, what: string, ok?: (x: number) => boolean): Zod.ZodType<T> {
    const problem = (v: unknown): string | null => {
      if (!(v instanceof Type)) return `expected a ${Type.name} of ${what}`;
      if (ok) for (let i = 0; i < v.length; i++) if (!ok(v[i] as number)) return `item ${i}: expected ${what}`;
      return null;
    };
    return z.custom<T>((v) => problem(v) === null, { error: (iss) => problem(iss.input) ?? `expected a ${Type.name} of ${what}` });
  }
  const u32s = typedCheck(Uint32Array, 'non-negative integers');
  const countsF64 = typedCheck(Float64Array, 'non-negative integers', (x) => Number.isSafeInteger(x) && x >= 0);
  const numbersF64 = typedCheck(Float64Array, 'finite numbers', (x) => Number.isFinite(x));
  const secondsF64 = typedCheck(Float64Array, 'durations (finite numbers >= 0)', (x) => Number.isFinite(x) && x >= 0);
  const count = z.number().int().nonnegative();
  const id = z.number().int().nonnegative();
  const resources = z.record(z.string().min(1), z.number().nonnegative().finite());

  const serializedError = z.object({
    name: z.string(),
    message: z.string(),
    stack: z.string().optional(),
    failedKey: z.string().optional(),
  });

  /** Values travel as msgpack bytes; large ones leave `null` here and follow as raw frames. */
  const blobs = columnCheck<Uint8Array | null>('binary values or null', (x) => x === null || x instanceof Uint8Array);
  const rawLengths = counts.optional();

  const topics = columnCheck<string>(`topics (non-empty strings of at most ${MAX_TOPIC} characters)`, (x) => typeof x === 'string' && x.length > 0 && x.length <= MAX_TOPIC);
  const eventData = columnCheck<Uint8Array>(`event data (binary, at most ${MAX_EVENT_BYTES} bytes each)`, (x) => x instanceof Uint8Array && x.length <= MAX_EVENT_BYTES);
  /** Events in two columns of one length: topics[i] and the msgpack bytes data[i]. */
  const taskEvents = { topics, data: eventData };

  // ---------------------------------------------------------------- handshake

  const workerInfo = z.object({
    name: z.string().min(1).max(256),
    /** ws:// address of the worker's data server, where peers fetch results. */
    address: z.string().min(1),
    nthreads: z.number().int().min(1).max(1024),
    resources: resources.default({}),
    pid: count.default(0),
    /** Its memory limit in bytes (0: none), for the dashboard's memory bars. */
    memoryLimit: count.default(0),
  });

  const hello = z.object({
    op: z.literal('hello'),
    role: z.enum(['client', 'worker', 'peer']),
    version: z.number().int(),
    token: z.string().optional(),
    worker: workerInfo.optional(),
  });

  const welcome = z.object({ op: z.literal('welcome'), version: z.number().int(), id: z.string() });
  const refused = z.object({ op: z.literal('refused'), reason: z.string() });
  const handshakeReply = z.discriminatedUnion('op', [welcome, refused]);

  // ---------------------------------------------------------------- client → scheduler

  /** Per-task options, sent only for tasks that have any. */
  const taskExtra = z.object({
    /** Index of the task in `keys`. */
    i: count,
    priority: z.number().finite().optional(),
    retries: z.number().int().min(0).max(1000).optional(),
    resources: resources.optional(),
    workers: z.array(z.string()).optional(),
  });

  /** A task function: [kind (0 module export, 1 inline source), reference or source, label]. */
  const fnDef = z.tuple([z.union([z.literal(0), z.literal(1)]), z.string().min(1).max(1_000_000), z.string().max(256)]);

  /**
   * A graph, column by column: task i has key keys[i], function fnTable[fn[i]],
   * arguments args[argEnds[i-1] .. argEnds[i]] (msgpack; key references inside)
   * and the next depCounts[i] keys of `deps` as dependencies. Column checks
   * that zod cannot express are done by `checkGraphColumns`.
   */
  const graphMsg = z.object({
    op: z.literal('update-graph'),
    id,
    keys,
    fnTable: z.array(fnDef),
    fn: u32s,
    args: bytes,
    argEnds: u32s,
    depCounts: u32s,
    deps: keys,
    extra: z.array(taskExtra),
    /** Indices of tasks of this graph the client holds futures for. */
    wants: u32s,
    /**
     * The client's ticket for each of `wants` (-1: none): the scheduler says
     * such a task is in memory by its ticket instead of its key, which the
     * client finds without a lookup by key.
     */
    tickets: typedCheck(Float64Array, 'tickets (integers >= -1)', (x) => Number.isSafeInteger(x) && x >= -1),
    /** Keys already on the cluster the client wants too. */
    wantKeys: keys,
    /**
     * More parts of this submission follow: its tasks are held (not dropped
     * for want of a wanter or a dependent) until a part without `more`.
     */
    more: z.boolean().optional(),
  });


  /** Actions on each kind of coordination primitive (scheduler/coordination.ts). */
  const SYNC_ACTIONS = {
    semaphore: ['acquire', 'release', 'refresh', 'count'],
    event: ['set', 'clear', 'wait', 'is-set'],
    variable: ['set', 'get', 'delete'],
    queue: ['put', 'get', 'qsize'],
  } as const;
  /** A call on a Semaphore (Lock), Event, Variable or Queue, by name. */
  const syncMsg = z
    .object({
      op: z.literal('sync'),
      id,
      kind: z.enum(['semaphore', 'event', 'variable', 'queue']),
      name: z.string().min(1).max(256),
      action: z.enum(['acquire', 'release', 'refresh', 'count', 'set', 'clear', 'wait', 'is-set', 'get', 'delete', 'put', 'qsize']),
      /** Seconds to wait at most (absent: no limit; 0: answer at once). */
      timeout: z.number().nonnegative().max(86_400 * 365).optional(),
      lease: z.string().min(1).max(64).optional(),
      leases: z.array(z.string().min(1).max(64)).max(10_000).optional(),
      maxLeases: z.number().int().min(1).max(1_000_000).optional(),
      /** Seconds a lease lasts unless its holder refreshes it. */
      leaseTimeout: z.number().positive().max(86_400).optional(),
      maxsize: z.number().int().nonnegative().max(1_000_000).optional(),
      value: bytes.refine((b) => b.length <= MAX_SYNC_VALUE_BYTES, 'a value of at most 1 MiB encoded (keep large data in task results)').optional(),
      /** Instead of a value: a task's key (a future), kept wanted while held. */
      key: key.optional(),
    })
    .superRefine((m, ctx) => {
      if (!(SYNC_ACTIONS[m.kind] as readonly string[]).includes(m.action)) ctx.addIssue({ code: 'custom', message: `a ${m.kind} has no action ${m.action} (it has ${SYNC_ACTIONS[m.kind].join(', ')})` });
      if ((m.action === 'acquire' || m.action === 'release') && m.lease === undefined) ctx.addIssue({ code: 'custom', message: `${m.action} needs its lease id` });
      if ((m.action === 'set' && m.kind === 'variable') || m.action === 'put') {
        if ((m.value === undefined) === (m.key === undefined)) ctx.addIssue({ code: 'custom', message: `${m.action} needs a value or a key, not both` });
      }
    });

  const clientToScheduler = z.discriminatedUnion('op', [
    syncMsg,
    graphMsg,
    z.object({ op: z.literal('release'), keys }),
    z.object({ op: z.literal('want'), id, keys }),
    z.object({ op: z.literal('scattered'), id, keys, nbytes: counts, worker: z.string() }),
    /** Values of wanted keys that were lost with their worker, which this client had fetched: it put them on `worker` (restore.ts). */
    z.object({ op: z.literal('restore'), keys, nbytes: counts, worker: z.string() }),
    z.object({ op: z.literal('who-has'), id, keys }),
    /** Every worker holding each key (who-has names one). */
    z.object({ op: z.literal('who-has-all'), id, keys }),
    z.object({ op: z.literal('workers'), id }),
    /** How many workers the work wants now (adaptive.ts), for `targetDuration` seconds of work per thread. */
    z.object({ op: z.literal('adaptive-target'), id, targetDuration: z.number().positive().max(86_400) }),
    /** Are you there? (answered with pong; a client that hears nothing for its timeout gives up on the scheduler) */
    z.object({ op: z.literal('ping'), id }),
    /** What the dashboard recorded since `since` (ms since the epoch), for a performance report (answered by the server). */
    z.object({ op: z.literal('report-data'), id, since: z.number().nonnegative() }),
    /** The scheduler process's own figures (answered by the server, not the state machine); `reset` starts a new measuring window. */
    z.object({ op: z.literal('process-stats'), id, reset: z.boolean().optional(), /** Collect garbage first (a scheduler run with --expose-gc). */ gc: z.boolean().optional() }),
    /** Receive the task events of these topics from now on (see `events`). */
    /** Named results that outlive the client that made them (Dask's datasets): publish, look up, list, unpublish. */
    z.object({ op: z.literal('publish-dataset'), id, name: z.string().min(1).max(1000), keys }),
    z.object({ op: z.literal('get-dataset'), id, name: z.string().min(1).max(1000) }),
    z.object({ op: z.literal('list-datasets'), id }),
    z.object({ op: z.literal('unpublish-dataset'), id, name: z.string().min(1).max(1000) }),
    /** Run these keys' tasks to the end even if every client lets go of them (Dask's fire_and_forget). */
    z.object({ op: z.literal('fire-and-forget'), keys }),
    z.object({ op: z.literal('subscribe'), topics }),
    z.object({ op: z.literal('unsubscribe'), topics }),
    /** Copies of these results on `n` workers in all (Dask's replicate); answered once they are there. */
    z.object({ op: z.literal('replicate'), id, keys, n: z.number().int().min(1).max(10_000) }),
    /** Every task and result dropped, on the scheduler and the workers (whose executor threads are replaced); every client's futures cancelled. */
    z.object({ op: z.literal('restart'), id }),
    /** These workers (by name) take no new work, hand the results only they hold to the others, then shut down. */
    z.object({ op: z.literal('retire-workers'), id, names: z.array(z.string().min(1).max(256)).max(10_000) }),
  ]);

  // ---------------------------------------------------------------- scheduler → client

  const workerSummary = z.object({
    name: z.string(),
    address: z.string(),
    nthreads: z.number(),
    resources,
    processing: count,
    stored: count,
    storedBytes: count,
    memory: count,
    pid: count,
    /** Bytes the worker sent to other workers, and fetched from them, as its last heartbeat said. */
    bytesSentToPeers: count.optional(),
    bytesFetched: count.optional(),
    /** The worker process's CPU use over its last heartbeat interval (1 = one core). */
    cpu: z.number().nonnegative().optional(),
    /** Past its memory limit's pause threshold (it starts no task), and bytes of results it spilled to disk. */
    paused: z.boolean().optional(),
    spilledBytes: count.optional(),
    /** Threads running a cancelled task that has not stopped yet (all of them: it gets no new work). */
    stuck: count.optional(),
    /** Its memory limit (0 or absent: none). */
    memoryLimit: count.optional(),
    /** Why it cannot spill results to disk (disk full), while it cannot. */
    spillBlocked: z.string().optional(),
    /** Tasks work stealing moved here from other workers, and away from here, so far. */
    stolenIn: count.optional(),
    stolenOut: count.optional(),
  });

  const schedulerToClient = z.discriminatedUnion('op', [
    z.object({ op: z.literal('graph-ok'), id }),
    z.object({ op: z.literal('graph-rejected'), id, error: serializedError, keys }),
    /**
     * Keys now in memory, by key or by the client's ticket: `holder[i]`
     * indexes `addresses`, a worker that holds keys[i]; `ticketHolder[i]` one
     * that holds the key of tickets[i].
     */
    z.object({ op: z.literal('in-memory'), keys, holder: u32s, tickets: countsF64, ticketHolder: u32s, addresses: z.array(z.string()) }),
    z.object({ op: z.literal('erred'), key, error: serializedError }),
    z.object({ op: z.literal('lost'), keys }),
    z.object({ op: z.literal('no-worker'), keys, reason: z.string() }),
    z.object({ op: z.literal('want-reply'), id, missing: keys }),
    /** For each key asked, an index into `addresses` of a worker holding it, or -1. */
    z.object({ op: z.literal('who-has-reply'), id, addresses: z.array(z.string()), holder: columnCheck<number>('worker indices (-1 for none)', (x) => Number.isSafeInteger(x) && (x as number) >= -1) }),
    z.object({ op: z.literal('workers-reply'), id, workers: z.array(workerSummary) }),
    z.object({ op: z.literal('adaptive-target-reply'), id, workers: count }),
    z.object({ op: z.literal('pong'), id }),
    /** The answer to a dataset request: its keys, the names, or why not. */
    z.object({ op: z.literal('dataset-reply'), id, keys: keys.optional(), names: z.array(z.string()).optional(), error: z.string().optional() }),
    /** For each key asked, the data-server addresses of the workers holding it (none: an empty list). */
    z.object({ op: z.literal('who-has-all-reply'), id, holders: stringLists }),
    /** The dashboard's record for a performance report, as JSON (a Snapshot), or why there is none. */
    z.object({ op: z.literal('report-data-reply'), id, json: z.string().optional(), error: z.string().optional() }),
    /** The cluster restarted: every future of this client is cancelled. */
    z.object({ op: z.literal('restarted') }),
    /** A restart done: every worker dropped its results and replaced its threads. */
    z.object({ op: z.literal('restart-reply'), id }),
    /** A replicate or retire-workers request done: `failed` says what could not be copied (and why), `retired` who left. */
    z.object({ op: z.literal('moved'), id, failed: z.array(z.string()), retired: z.array(z.string()).optional() }),
    z.object({ op: z.literal('scattered-ok'), id, error: z.string().optional() }),
    /** Since the last reset: the longest event-loop stall; and now: resident and heap memory, tasks known. */
    z.object({ op: z.literal('process-stats-reply'), id, maxStallMs: z.number().nonnegative(), rss: count, heapUsed: count, tasks: count, /** Task runs sent to workers so far. */ taskRuns: count.optional(), /** Results computed by a run (not given back, not stopped). */ tasksComputed: count.optional() }),
    /** Task events of topics this client subscribed to, in the order each worker sent them. */
    z.object({ op: z.literal('events'), ...taskEvents }),
    /** The answer to a `sync` call: ok (false: timed out, or an error said), with a value or a size. */
    z.object({ op: z.literal('sync-reply'), id, ok: z.boolean(), value: bytes.optional(), key: key.optional(), error: z.string().optional(), size: count.optional() }),
  ]);

  // ---------------------------------------------------------------- worker → scheduler

  const workerToScheduler = z.discriminatedUnion('op', [
    z.object({
      op: z.literal('finished'),
      keys,
      runs: countsF64,
      nbytes: countsF64,
      /** Seconds each task ran, for the scheduler's duration estimates. */
      durations: secondsF64,
    }),
    z.object({ op: z.literal('erred'), key, run: count, error: serializedError }),
    /** Tasks handed to an executor thread: the ones to blame if this worker dies. */
    z.object({ op: z.literal('executing'), keys, runs: countsF64 }),
    z.object({ op: z.literal('missing'), key, run: count, dep: key, holders: z.array(z.string()) }),
    /** Connected again after losing the scheduler: the results this worker holds (the scheduler keeps those it knows, frees the rest). */
    z.object({ op: z.literal('holding'), keys, nbytes: countsF64 }),
    /** Done restarting: nothing held, fresh threads. */
    z.object({ op: z.literal('restarted') }),
    /** Results of an `acquire` now kept here (with their sizes), and those no holder gave. */
    z.object({ op: z.literal('acquired'), keys, nbytes: countsF64, missing: keys }),
    /** Results the scheduler believes are here and are not (an ephemeral value handed on): recompute them if needed. */
    z.object({ op: z.literal('lost'), keys }),
    /** The worker's resident memory (bytes). */
    z.object({ op: z.literal('heartbeat'), memory: count, sentToPeers: count.optional(), fetched: count.optional(), /** CPU time over wall time since the last one (1 = one core busy). */ cpu: z.number().nonnegative().optional(), /** Past its memory limit's pause threshold: it starts no task. */ paused: z.boolean().optional(), spilledBytes: count.optional(), /** Why spilling to disk fails (disk full), while it does. */ spillBlocked: z.string().max(500).optional(), /** Threads running a task cancelled that has not stopped yet. */ stuck: count.optional() }),
    /** Events published by running tasks, sent before those tasks' results. */
    z.object({ op: z.literal('task-events'), ...taskEvents }),
    /**
     * Results put here by running tasks before they ended (TaskContext.earlyResult):
     * keys[i] (nbytes[i] bytes) by task parents[i] under run runs[i]. Sent before
     * the task events that announce them.
     */
    z.object({ op: z.literal('early'), parents: keys, runs: countsF64, keys, nbytes: countsF64 }),
    /** A running task gave its thread slot back (`away`: TaskContext.secede), or took it again (rejoin). */
    z.object({ op: z.literal('secede'), key, run: count, away: z.boolean() }),
    /** The answer to a `steal`: for each task asked (by run), whether it was dropped here unstarted. */
    z.object({ op: z.literal('steal-reply'), keys, runs: countsF64, released: z.array(z.boolean()) }),
  ]);

  // ---------------------------------------------------------------- scheduler → worker

  /**
   * Tasks to run, column by column: task i is keys[i] (run runs[i], function
   * fns[i], msgpack arguments args[argEnds[i-1] .. argEnds[i]]) with the next
   * depCounts[i] entries of deps, who (holders' data-server addresses) and
   * sizes (bytes, as the scheduler last heard: the worker fetches in batches
   * of bounded size) as its dependencies.
   */
  const computeMsg = z.object({
    op: z.literal('compute'),
    keys,
    runs: countsF64,
    fns: u32s,
    args: bytes,
    argEnds: u32s,
    /** Graph order: lower runs first. */
    orders: numbersF64,
    /** User priority: higher runs first; compared before the order. */
    priorities: numbersF64,
    depCounts: u32s,
    deps: keys,
    who: stringLists,
    sizes: countsF64,
    /** Resource requests of the tasks that have any: [task index, resources]. */
    resources: z.array(z.tuple([count, resources])),
    /**
     * Indices of tasks whose result only the next task of this message needs
     * (sent along behind it, wanted by no client): the worker may hand the
     * value to that task without keeping a copy. If it is asked for later,
     * the worker says it is lost (op 'lost') and the scheduler recomputes it.
     */
    ephemeral: u32s.optional(),
  });


  const fnsMsg = z.object({ op: z.literal('fns'), ids: counts, defs: z.array(fnDef) });

  const schedulerToWorker = z.discriminatedUnion('op', [
    computeMsg,
    fnsMsg,
    z.object({ op: z.literal('free'), keys }),
    /** Drop every task and result, replace the executor threads (client.restart); answered with `restarted`. */
    z.object({ op: z.literal('restart') }),
    /** Fetch these results from their holders (`who`) and keep them as this worker's own (replicas). */
    z.object({ op: z.literal('acquire'), keys, who: stringLists, sizes: countsF64 }),
    /** Functions no task refers to any more: drop them (scheduler/functions.ts). */
    z.object({ op: z.literal('forget-fns'), ids: counts }),
    /** Work stealing: drop these tasks (by run) if they have not started, and say which were (`steal-reply`). */
    z.object({ op: z.literal('steal'), keys, runs: countsF64 }),
  ]);

  // ---------------------------------------------------------------- peer ↔ worker data server

  const peerToWorker = z.discriminatedUnion('op', [
    /** `packed`: reply with the values back to back in one blob (for clients, which decode values). */
    z.object({ op: z.literal('get'), id, keys, packed: z.boolean().optional() }),
    /** `partial`: store the keys this worker does not know and refuse the rest; without it, a key it knows refuses the whole put. */
    z.object({ op: z.literal('put'), id, keys, blobs, raw: rawLengths, partial: z.boolean().optional() }),
    z.object({ op: z.literal('metrics'), id }),
    /** Clients only: call a function in the worker's process (client.run), its arguments as a msgpack array. */
    z.object({ op: z.literal('run'), id, fn: fnDef, args: bytes }),
    /** Clients only: call a method of an actor kept here (client/actor.ts), its arguments as a msgpack array. */
    z.object({ op: z.literal('actor-call'), id, actor: z.string().min(1).max(64), method: z.string().min(1).max(256), args: bytes }),
  ]);

  const workerMetrics = z.object({
    /** Bytes of results this worker sent to other workers. */
    bytesSentToPeers: count,
    /** Bytes of results this worker sent to clients (gather). */
    bytesSentToClients: count,
    /** Bytes this worker fetched from other workers. */
    bytesFetched: count,
    tasksExecuted: count,
    stored: count,
    storedBytes: count,
    /** The memory limit (0: none); results held in memory (managed) and on disk (spilled); paused past the limit's pause threshold. */
    memoryLimit: count.optional(),
    managedBytes: count.optional(),
    spilledBytes: count.optional(),
    paused: z.boolean().optional(),
  });

  const workerToPeer = z.discriminatedUnion('op', [
    /** With `packed`, blobs hold the values asked for, in order, back to back (a large one alone in its blob), leaving out `missing`; `keys` is empty. */
    z.object({ op: z.literal('data'), id, keys, blobs, raw: rawLengths, missing: keys, packed: z.boolean().optional() }),
    /** `nbytes` of the keys stored, in order; `refused`: keys this worker already had (a put never replaces a result). */
    z.object({ op: z.literal('put-ok'), id, nbytes: counts, refused: keys.optional() }),
    z.object({ op: z.literal('metrics-reply'), id, metrics: workerMetrics }),
    /** What the function returned (msgpack), or why it failed. */
    z.object({ op: z.literal('run-reply'), id, value: bytes.optional(), error: serializedError.optional() }),
    /** What the actor's method returned (msgpack), or why it failed. */
    z.object({ op: z.literal('actor-reply'), id, value: bytes.optional(), error: serializedError.optional() }),
  ]);

  // ---------------------------------------------------------------- any direction

  /** Sent just before a connection is closed for a protocol error. */
  const errorMsg = z.object({ op: z.literal('error'), message: z.string() });

  /** Framing: the next `n` raw frames concatenate into one batch frame too large for one frame. */
  const partsMsg = z.object({ op: z.literal('$parts'), n: z.number().int().min(1), total: count });
  return { serializedError, workerInfo, hello, welcome, refused, handshakeReply, taskExtra, fnDef, graphMsg, clientToScheduler, workerSummary, schedulerToClient, workerToScheduler, computeMsg, fnsMsg, schedulerToWorker, peerToWorker, workerMetrics, workerToPeer, errorMsg, partsMsg };
});
type Schemas = ReturnType<typeof messageSchemas>;
export type WorkerInfo = Zod.infer<Schemas['workerInfo']>;
export type Hello = Zod.infer<Schemas['hello']>;
export type TaskExtra = Zod.infer<Schemas['taskExtra']>;
export type FnDef = Zod.infer<Schemas['fnDef']>;
export type GraphMsg = Zod.infer<Schemas['graphMsg']>;
export type ClientToScheduler = Zod.infer<Schemas['clientToScheduler']>;
export type SyncRequest = Extract<ClientToScheduler, { op: 'sync' }>;
export type WorkerSummary = Zod.infer<Schemas['workerSummary']>;
export type SchedulerToClient = Zod.infer<Schemas['schedulerToClient']>;
export type WorkerToScheduler = Zod.infer<Schemas['workerToScheduler']>;
export type ComputeMsg = Zod.infer<Schemas['computeMsg']>;
export type SchedulerToWorker = Zod.infer<Schemas['schedulerToWorker']>;
export type PeerToWorker = Zod.infer<Schemas['peerToWorker']>;
export type WorkerMetrics = Zod.infer<Schemas['workerMetrics']>;
export type WorkerToPeer = Zod.infer<Schemas['workerToPeer']>;
