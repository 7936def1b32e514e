/** Loading a code location: the module whose default export is a Definitions object. */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { DefinitionError } from './errors.ts';
import { Definitions } from './repository.ts';
import { importUserModule } from '../util/user-modules.ts';

/** A module path or file: URL as a file: URL (paths resolve against the working directory). */
export function moduleUrl(spec: string): string {
  return spec.startsWith('file:') ? spec : pathToFileURL(resolve(spec)).href;
}

/** Imports a module and returns its Definitions: the default export, or the one exported Definitions. */
export async function loadDefinitions(spec: string): Promise<Definitions> {
  const url = moduleUrl(spec);
  let mod: Record<string, unknown>;
  try {
    mod = await importUserModule(url);
  } catch (err) {
    throw new DefinitionError(`cannot import ${spec}: ${(err as Error).message}`);
  }
  const defs = definitionsOf(mod, spec);
  defs.location = url;
  return defs;
}

/** The Definitions of an imported module: its default export, or its one exported Definitions. */
export function definitionsOf(mod: Record<string, unknown>, spec: string): Definitions {
  let defs: Definitions | undefined;
  if (Definitions.isDefinitions(mod['default'])) defs = mod['default'];
  else {
    const found = Object.values(mod).filter((v): v is Definitions => Definitions.isDefinitions(v));
    if (found.length === 1) defs = found[0];
    else if (found.length > 1) throw new DefinitionError(`${spec} exports ${found.length} Definitions objects; export one as the default`);
  }
  if (!defs) throw new DefinitionError(`${spec} has no Definitions: make \`export default new Definitions({ jobs, assets })\` its default export`);
  return defs;
}

/**
 * A fingerprint of a code location's module file (null if it cannot be
 * read): a process that imported an older version of the file can tell, as
 * modules are imported once per process.
 */
export function codeVersion(url: string): string | null {
  try {
    return createHash('sha1').update(readFileSync(fileURLToPath(url))).digest('hex').slice(0, 16);
  } catch {
    return null;
  }
}
