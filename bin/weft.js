#!/usr/bin/env node
// weft ships TypeScript sources; tsx compiles them on load so that task modules
// written in TypeScript import the same way on every worker.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
