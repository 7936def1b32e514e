// Worker threads do not inherit the main thread's loader hooks: register tsx
// here so that the executor and TypeScript task modules load.
import { register } from 'tsx/esm/api';

register();
await import('./executor-thread.ts');
