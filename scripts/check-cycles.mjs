// Fails when weft's sources import each other in a cycle. Counted: every
// import and re-export of a relative module, types only included, and
// `import()` on demand: modules form layers, each importing only the ones
// below it. Run by npm test.
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const src = join(dirname(fileURLToPath(import.meta.url)), '..', 'src');
const files = readdirSync(src, { recursive: true })
  .filter((f) => f.endsWith('.ts') || f.endsWith('.tsx'))
  .map((f) => resolve(src, f));
const known = new Set(files);

/** The relative modules a file imports: statically, for types only, or on demand with `import()`. */
function imports(file) {
  const text = readFileSync(file, 'utf8');
  const out = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s+(?:type\s+)?[^;'"]*?\s*from\s+'(\.[^']+)'/gm)) out.push(m[1]);
  for (const m of text.matchAll(/^\s*import\s+'(\.[^']+)'/gm)) out.push(m[1]);
  for (const m of text.matchAll(/\bimport\(\s*'(\.[^']+)'\s*\)/g)) out.push(m[1]);
  return out.map((p) => resolve(dirname(file), p)).filter((t) => known.has(t));
}

const graph = new Map(files.map((f) => [f, imports(f)]));
// Tarjan's strongly connected components: each with more than one module is a cycle.
let next = 0;
const index = new Map();
const low = new Map();
const stack = [];
const onStack = new Set();
const cycles = [];
function visit(v) {
  index.set(v, next);
  low.set(v, next);
  next++;
  stack.push(v);
  onStack.add(v);
  for (const w of graph.get(v) ?? []) {
    if (!index.has(w)) {
      visit(w);
      low.set(v, Math.min(low.get(v), low.get(w)));
    } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
  }
  if (low.get(v) !== index.get(v)) return;
  const scc = [];
  let w;
  do {
    w = stack.pop();
    onStack.delete(w);
    scc.push(w);
  } while (w !== v);
  if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(scc);
}
for (const f of files) if (!index.has(f)) visit(f);
if (cycles.length > 0) {
  for (const c of cycles) console.error(`import cycle: ${c.map((f) => relative(src, f)).join(' -> ')}`);
  process.exit(1);
}
console.log(`no import cycles among ${files.length} modules`);
