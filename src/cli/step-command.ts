/**
 * `weft step`, apart from the rest of the CLI: it starts in every step's
 * container or pod, so it loads only what running a step needs (launch.mjs
 * comes straight here), not the CLI's option schemas or its logger.
 */
import { parseArgs } from 'node:util';

const HELP = `Usage: weft step [--args PACKED]

Runs exactly one attempt of one step of a run and reports to the run's
coordinator (Dagster's execute_step). Step handlers (the docker and
Kubernetes executors) start it; its arguments (code location, job, run id,
step, attempt, op config, coordinator address and token) come packed in
--args or in the WEFT_STEP_ARGS environment variable.

Exit code: 0 when the step's result was reported (success or failure),
1 when it could not report, 2 for bad arguments.`;

/** Runs `weft step ARGV`; sets the exit code. */
export async function runStepCommand(argv: string[]): Promise<void> {
  let values: { args?: string | undefined; help?: boolean | undefined };
  try {
    values = parseArgs({ args: argv, options: { args: { type: 'string' }, help: { type: 'boolean' } }, strict: true }).values;
  } catch (err) {
    process.stderr.write(`weft: ${(err as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  if (values.help) {
    console.log(HELP);
    return;
  }
  const { readStepArgs, runStep } = await import('../jobs/step/weft-step.ts');
  try {
    process.exitCode = await runStep(readStepArgs(values.args));
  } catch (err) {
    const e = err as Error;
    process.stderr.write(`weft step: ${e.name === 'ConfigError' ? '' : `${e.name}: `}${e.message}\n`);
    process.exitCode = e.name === 'ConfigError' ? 2 : 1;
  }
}
