#!/usr/bin/env node
// The `weft` command of the package: the compiled CLI in dist/. A checkout
// builds it with `npm run build` (npm ci does); `node src/cli/launch.mjs`
// runs the CLI from its TypeScript sources instead.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/launch.mjs', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write(`weft: ${entry.pathname} is missing: build weft first (npm run build)\n`);
  process.exit(1);
}
await import(entry.href);
