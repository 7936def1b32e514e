/**
 * The `weft` command line: finds the command (commands.ts), parses its flags,
 * runs it. Bad arguments exit with 2, other failures with 1.
 */
import { ConfigError } from '../errors.ts';
import { fail, flag, helpText, parse } from './args.ts';
import { COMMANDS, mainHelp, version } from './commands.ts';
import { dropOutputWhenClosed } from './stop-signals.ts';

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') return void console.log(mainHelp());
  if (name === '--version' || name === '-v' || name === 'version') return void console.log(`weft ${version()}`);
  const cmd = COMMANDS.find((c) => c.name === name) ?? fail(`unknown command '${name}'. Commands: ${COMMANDS.map((c) => c.name).join(', ')}. See weft --help.`);
  if (cmd.raw) return cmd.run({ values: {}, positionals: [], argv: rest });
  const args = parse(cmd, rest);
  if (flag(args, 'help')) return void console.log(helpText(cmd));
  await cmd.run(args);
}

dropOutputWhenClosed();
main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError || (err instanceof Error && (err.name === 'RunConfigError' || err.name === 'DefinitionError'))) {
    process.stderr.write(`weft: ${err.message}\n`);
    process.exit(2);
  }
  const e = err as Error;
  process.stderr.write(`weft: ${e.name}: ${e.message}\n`);
  process.exit(1);
});
