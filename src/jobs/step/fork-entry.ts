/**
 * The entry of a multiprocess step process where esbuild is not installed
 * (bundle.ts cannot bundle the code location): the prelude, then the code
 * location imported as the user's module (`process.argv[2]`), then the
 * step loop of fork-main.ts. It starts slower than a bundle, which loads as
 * one file, but needs nothing beyond weft's own dependencies (and tsx for a
 * TypeScript code location).
 */
import './prelude.ts';
import { importUserModule } from '../../util/self.ts';
import { startStepProcess } from './fork-main.ts';

const url = process.argv[2] ?? '';
startStepProcess(importUserModule(url), url);
