#!/usr/bin/env node
// The `weft` command: the compiled CLI in dist/ (the package), or, in a
// checkout that has not been built, the TypeScript sources through tsx (a
// development dependency there).
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/launch.mjs', import.meta.url);
const sources = new URL('../src/cli/launch.mjs', import.meta.url);
if (existsSync(compiled)) await import(compiled.href);
else if (existsSync(new URL('../node_modules/tsx/package.json', import.meta.url)) && existsSync(sources)) await import(sources.href);
else {
  process.stderr.write(`weft: ${compiled.pathname} is missing: build weft first (npm run build)\n`);
  process.exit(1);
}
