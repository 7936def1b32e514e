/**
 * The entry of a multiprocess step process where esbuild is not installed
 * (bundle.ts cannot bundle the code location): the prelude, then the code
 * location imported as the user's module (`process.argv[2]`), then the
 * step loop of fork-main.ts. It starts slower than a bundle, which loads as
 * one file, but needs nothing beyond weft's own dependencies (and tsx for a
 * TypeScript code location). A warm process (no `once`) follows the code
 * location: edited, it is loaded again for the next step.
 */
import './prelude.ts';
import { followUserModules, importUserModule } from '../../util/user-modules.ts';
import { noteReload, startStepProcess } from './fork-main.ts';

const url = process.argv[2] ?? '';
if (!process.argv.includes('once')) followUserModules(noteReload);
startStepProcess(() => importUserModule(url), url);
