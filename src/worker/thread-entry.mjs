// Worker threads do not inherit the main thread's loader hooks: register tsx
// here so that TypeScript task modules (and, from sources, weft) load.
import { existsSync } from 'node:fs';
import { register } from 'tsx/esm/api';

register();
const compiled = new URL('./executor-thread.js', import.meta.url);
await import(existsSync(compiled) ? compiled.href : new URL('./executor-thread.ts', import.meta.url).href);
