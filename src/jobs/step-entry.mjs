// Entry of a step process: register tsx (from weft's own dependencies, so the
// user's project needs none) for TypeScript code locations, then start.
import { register } from 'tsx/esm/api';

register();
await import('./step-process.ts');
