// The entry of weft's worker threads (a worker's executor threads, the run
// writer): it imports the module named in workerData.entry (a path under
// src/ or dist/, without extension). Worker threads do not inherit the main
// thread's loader hooks. From sources (a checkout), weft itself is
// TypeScript: register tsx here. The compiled package registers it only when
// a TypeScript task module is first imported (util/self.ts), so that tsx
// stays an optional peer dependency.
import { existsSync } from 'node:fs';
import nodeModule from 'node:module';
import { workerData } from 'node:worker_threads';

// Node 22.8+: threads do not inherit the process's compile cache (cli/launch.mjs); each asks for it.
nodeModule.enableCompileCache?.();

const entry = workerData?.entry;
if (typeof entry !== 'string' || !/^[a-z-]+\/[a-z-]+$/.test(entry)) throw new Error(`weft thread: workerData.entry must name a module (got ${JSON.stringify(entry)})`);
const compiled = new URL(`../${entry}.js`, import.meta.url);
if (existsSync(compiled)) await import(compiled.href);
else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL(`../${entry}.ts`, import.meta.url).href);
}
