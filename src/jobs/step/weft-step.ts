/**
 * `weft step`: runs exactly one attempt of one step of a run, in whatever
 * process a step handler started (a container, a Kubernetes pod, a process
 * on another machine); Dagster's `dagster api execute_step`. Its arguments
 * (code location, job, run, step, attempt, op config, the coordinator's
 * address and this attempt's token) come packed in `--args` or the
 * WEFT_STEP_ARGS environment variable (spec.ts).
 *
 * It imports the code location while it connects to the run's coordinator,
 * says hello with its token, gets its inputs, runs the step, streams the
 * events while the step runs (outputs as msgpack), says done and exits 0.
 * Exit 1: it could not report (the coordinator unreachable, or gone).
 */
import { hostname } from 'node:os';
import { Packr, Unpackr } from 'msgpackr';
import { WebSocket } from 'ws';
import * as z from 'zod/mini';
import { ConfigError } from '../../errors.ts';
import { CODEC_OPTIONS } from '../../protocol/codec-options.ts';
import type { RunEvent } from '../events.ts';
import { definitionsOf, loadDefinitions, type CodeLocationJobs } from '../location.ts';
import { prebuiltLocation } from './prebuilt.ts';
import { MAX_STEP_FRAME, type FromStep } from './messages.ts';
import { Batcher, runStepSession } from './session.ts';
import { STEP_ARGS_ENV, unpackStepArgs, type StepArgs } from './spec.ts';

// zod's tree-shakable form: the bundle of `weft step` (scripts/build.mjs) carries only what these use.
const nonEmpty = z.string().check(z.minLength(1));
const stepArgs = z.strictObject({
  spec: z.strictObject({
    runId: nonEmpty,
    module: nonEmpty,
    jobName: nonEmpty,
    stepKey: nonEmpty,
    attempt: z.int().check(z.minimum(0)),
    retries: z.boolean(),
    runConfig: z.looseObject({ ops: z.optional(z.record(z.string(), z.unknown())) }),
    opSelection: z.optional(z.array(nonEmpty)),
  }),
  coordinator: z.string().check(z.regex(/^wss?:\/\/\S+$/, 'expected ws://HOST:PORT')),
  token: nonEmpty,
});

const toStep = z.discriminatedUnion('t', [z.object({ t: z.literal('start'), inputs: z.array(z.instanceof(Uint8Array)) }), z.object({ t: z.literal('cancel') })]);

/** Frames are plain msgpack, as the coordinator's codec reads them. */
const packr = new Packr(CODEC_OPTIONS);
const unpackr = new Unpackr(CODEC_OPTIONS);

const CONNECT_TIMEOUT_MS = 30_000;

/** Reads and checks the packed arguments. */
export function readStepArgs(packed: string | undefined): StepArgs {
  const given = packed ?? process.env[STEP_ARGS_ENV];
  if (!given) throw new ConfigError(`weft step needs its arguments: --args PACKED or the ${STEP_ARGS_ENV} environment variable (step handlers set them)`);
  let raw: unknown;
  try {
    raw = unpackStepArgs(given);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const r = stepArgs.safeParse(raw);
  if (!r.success) throw new ConfigError(`invalid step arguments: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data as StepArgs;
}

/** Runs the step; resolves with the exit code. */
export async function runStep(args: StepArgs): Promise<number> {
  const { spec } = args;
  const where = `step ${spec.stepKey} (attempt ${spec.attempt}) of run ${spec.runId}`;
  // The code location loads while the connection opens.
  const defs = loadLocation(spec.module).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
  const ws = new WebSocket(args.coordinator, { perMessageDeflate: false, maxPayload: MAX_STEP_FRAME, handshakeTimeout: CONNECT_TIMEOUT_MS });
  const controller = new AbortController();
  let cancelled = false;
  const send = (msg: FromStep): void => {
    if (ws.readyState === ws.OPEN) ws.send(packr.pack(msg));
  };
  const closed = new Promise<string>((resolve) => ws.once('close', (code, reason) => resolve(`${code}${reason.length > 0 ? `: ${reason.toString()}` : ''}`)));
  const inputs = new Promise<Uint8Array[]>((resolve, reject) => {
    ws.once('error', (err) => reject(new Error(`cannot reach the run's coordinator at ${args.coordinator}: ${err.message}`)));
    void closed.then((why) => reject(new Error(`the run's coordinator closed the connection (${why})`)));
    ws.once('open', () => send({ t: 'hello', runId: spec.runId, stepKey: spec.stepKey, attempt: spec.attempt, token: args.token, pid: process.pid, host: hostname() }));
    ws.on('message', (data, isBinary) => {
      let msg: z.infer<typeof toStep>;
      try {
        if (!isBinary) throw new Error('a text frame');
        msg = toStep.parse(unpackr.unpack(data as Buffer));
      } catch (err) {
        ws.close(1007, 'malformed frame');
        reject(new Error(`the coordinator sent a malformed message: ${(err as Error).message}`));
        return;
      }
      if (msg.t === 'start') resolve(msg.inputs);
      else {
        cancelled = true;
        controller.abort();
      }
    });
  });
  // Stopped from outside (docker stop, a deleted pod): the op sees its signal; what it reports still goes out.
  const stop = (): void => {
    cancelled = true;
    controller.abort();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  try {
    let given: Uint8Array[];
    try {
      given = await inputs;
    } catch (err) {
      process.stderr.write(`weft step: ${where}: ${(err as Error).message}\n`);
      return 1;
    }
    // Nobody to report to any more: stop the op.
    void closed.then(() => controller.abort());
    const events = new Batcher<RunEvent>((evs) => send({ t: 'events', evs }));
    await runStepSession(await defs, spec, given, controller.signal, (ev) => events.push(ev));
    events.flush();
    if (ws.readyState !== ws.OPEN) {
      // Cancelled: the coordinator (or docker stop, a deleted pod) ended it; nothing is lost.
      if (cancelled) return 0;
      process.stderr.write(`weft step: ${where}: lost the connection to the run's coordinator before reporting the end\n`);
      return 1;
    }
    send({ t: 'done' });
    ws.close(1000, 'done');
    await closed;
    return 0;
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  }
}

/** The code location: its prebuilt bundle when one is there and up to date (`weft bundle`), else the module itself. */
async function loadLocation(module: string): Promise<CodeLocationJobs> {
  const bundle = prebuiltLocation(module);
  if (!bundle) return loadDefinitions(module);
  const { location } = (await import(bundle)) as { location: Record<string, unknown> };
  const defs = definitionsOf(location, module);
  defs.location = module;
  return defs;
}
