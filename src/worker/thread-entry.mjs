// Worker threads do not inherit the main thread's loader hooks. From sources
// (a checkout), weft itself is TypeScript: register tsx here. The compiled
// package registers it only when a TypeScript task module is first imported
// (util/self.ts), so that tsx stays an optional peer dependency.
import { existsSync } from 'node:fs';

const compiled = new URL('./executor-thread.js', import.meta.url);
if (existsSync(compiled)) await import(compiled.href);
else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('./executor-thread.ts', import.meta.url).href);
}
