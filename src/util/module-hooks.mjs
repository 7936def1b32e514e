// Module resolution hooks of a process that follows its users' modules for
// changes (user-modules.ts registers them in each thread that does). For
// every file a user's module imports (a file: URL outside node_modules and
// outside weft itself) it posts [importer, file] to that thread, which
// watches the files; and a module imported again after a change carries
// `?weft-version=N`, which is passed on to the user files it imports, so
// that the whole of the user's code loads anew, not only the changed file.
// Plain JavaScript: it runs in Node's hooks thread, before any loader.

let port = null;
let weftRoot = '';
const VERSION = 'weft-version';

export function initialize(data) {
  port = data.port;
  weftRoot = data.weftRoot;
}

function userFile(url) {
  return url.startsWith('file:') && !url.includes('/node_modules/') && !url.startsWith(weftRoot);
}

function versionOf(url) {
  const q = url.indexOf('?');
  return q < 0 ? null : new URLSearchParams(url.slice(q + 1)).get(VERSION);
}

export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  const parent = context.parentURL;
  if (!userFile(r.url)) return r;
  const v = parent ? versionOf(parent) : null;
  let url = r.url;
  if (v !== null && versionOf(url) === null) {
    const u = new URL(url);
    u.searchParams.set(VERSION, v);
    url = u.href;
  }
  port?.postMessage([parent ?? '', url]);
  return url === r.url ? r : { ...r, url };
}
