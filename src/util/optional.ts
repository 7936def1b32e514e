/**
 * Packages that serve one part of weft only (an executor's client library,
 * the TypeScript loader, the bundler) are optional peer dependencies: a user
 * of the runtime does not install, build or download them. Each is loaded on
 * first use through `optionalPackage`, which turns "cannot find package" into
 * an error naming the package to install and what needs it.
 */
import { WeftError } from '../errors.ts';

/** An optional package that a feature needs is not installed. */
export class MissingPackageError extends WeftError {
  override name = 'MissingPackageError';
  constructor(
    readonly packages: readonly string[],
    forWhat: string,
  ) {
    super(`${forWhat} needs ${packages.length === 1 ? 'the package' : 'the packages'} ${packages.join(' and ')}, not installed here: npm install ${packages.join(' ')}`);
  }
}

/**
 * `load()` (an `import('pkg')` written at the call site, so that types and
 * bundlers see the name), or a MissingPackageError when one of `packages`
 * cannot be found. Any other failure of the import is thrown as it is.
 */
export async function optionalPackage<T>(packages: readonly string[], forWhat: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown };
    const notFound = e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'MODULE_NOT_FOUND';
    if (notFound && typeof e.message === 'string' && packages.some((p) => (e.message as string).includes(`'${p}`))) throw new MissingPackageError(packages, forWhat);
    throw err;
  }
}
