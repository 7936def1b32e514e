// The weft command line of this tree: the compiled modules beside this file
// (the package), or the TypeScript sources through tsx (a checkout).
import { existsSync } from 'node:fs';
import nodeModule from 'node:module';

// Node 22.8 and later keep the bytecode of the modules they compile on disk
// (in NODE_COMPILE_CACHE, else the temporary directory) and reuse it at the
// next start, as npm's own CLI asks: every weft process starts here. Node 20
// has no such cache; there this does nothing. NODE_DISABLE_COMPILE_CACHE=1
// turns it off.
nodeModule.enableCompileCache?.();

const compiled = existsSync(new URL('./main.js', import.meta.url));
if (!compiled) {
  const { register } = await import('tsx/esm/api');
  register();
}
const ext = compiled ? '.js' : '.ts';
if (process.argv[2] === 'step') {
  // In every step's container: only what running one step needs, bundled in the package.
  const bundled = new URL('./step.mjs', import.meta.url);
  const { runStepCommand } = await import(compiled && existsSync(bundled) ? bundled.href : new URL(`./step-command${ext}`, import.meta.url).href);
  await runStepCommand(process.argv.slice(3));
} else {
  await import(new URL(`./main${ext}`, import.meta.url).href);
}
