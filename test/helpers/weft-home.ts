/**
 * Every test file gets a WEFT_HOME of its own (a temporary folder), so that
 * runs the tests launch (`weft run` records them) never land in the
 * developer's ~/.weft, and files do not share a run storage.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

const home = mkdtempSync(join(tmpdir(), 'weft-home-'));
process.env['WEFT_HOME'] = home;
afterAll(() => rmSync(home, { recursive: true, force: true }));
