// The shape of src/: no circle of imports between files, none between folders (a folder is the first path
// segment under src/; shared/ may be imported by anyone and imports no other folder), and the webview
// bundles reach neither `vscode` nor Node. Type-only imports count: they tie the folders together as much.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { builtinModules } from 'node:module';
import * as path from 'node:path';

const root = path.join(__dirname, '..', '..');
const SRC = path.join(root, 'src');

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** The module specifiers a file imports or re-exports, statically or with `import()`. */
export function specifiers(text: string): string[] {
  const out: string[] = [];
  const patterns = [
    /(?:^|\n)[ \t]*(?:import|export)\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/g, // import … from, export … from (also across lines)
    /(?:^|\n)[ \t]*import\s*['"]([^'"]+)['"]/g, // import 'x' (side effects only)
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g, // import('x')
  ];
  for (const re of patterns) for (const m of text.matchAll(re)) out.push(m[1]);
  return out;
}

/** A relative specifier resolved to a file, or null (a package, or a file that is not TypeScript). */
function resolve(from: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null;
  const base = path.resolve(path.dirname(from), spec);
  for (const p of [base + '.ts', path.join(base, 'index.ts'), base]) if (fs.existsSync(p) && fs.statSync(p).isFile()) return p;
  throw new Error(`${path.relative(root, from)}: cannot resolve '${spec}'`);
}

interface Graph { files: Map<string, { local: string[]; external: string[] }> }

/** Every file reachable from `entries` (only .ts files are followed), with its local and package imports. */
function graphOf(entries: string[]): Graph {
  const files = new Map<string, { local: string[]; external: string[] }>();
  const todo = [...entries];
  while (todo.length) {
    const f = todo.pop()!;
    if (files.has(f)) continue;
    const node = { local: [] as string[], external: [] as string[] };
    files.set(f, node);
    if (!f.endsWith('.ts')) continue;
    for (const spec of specifiers(fs.readFileSync(f, 'utf8'))) {
      const r = resolve(f, spec);
      if (r === null) node.external.push(spec);
      else {
        node.local.push(r);
        todo.push(r);
      }
    }
  }
  return { files };
}

/** The strongly connected components with more than one member (or a self-edge): the import circles. */
function circles(edges: Map<string, Set<string>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>(), stack: string[] = [], on = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || edges.get(v)?.has(v)) found.push(scc.sort());
    }
  };
  for (const v of edges.keys()) if (!idx.has(v)) visit(v);
  return found;
}

const srcFiles = walk(SRC);
const { files } = graphOf(srcFiles);
const rel = (f: string) => path.relative(SRC, f).split(path.sep).join('/');
/** A file's folder: the first path segment under src/ (extension.ts, the composition root, is its own). */
const folderOf = (f: string) => (rel(f).includes('/') ? rel(f).split('/')[0] : rel(f));

test('the import graph parser sees every form of import', () => {
  assert.deepEqual(specifiers([
    "import * as fs from 'node:fs';",
    "import type { A } from './a';",
    "import {\n  b,\n  type C,\n} from '../b';",
    "export { d } from './d';",
    "export type { E } from \"./e\";",
    "import './side';",
    "const m = await import('./lazy');",
    ' * not an import: from \'./comment\'',
  ].join('\n')).sort(), ['../b', './a', './d', './e', './lazy', './side', 'node:fs'].sort());
  assert.ok(files.size >= srcFiles.length, 'every file under src/ is in the graph');
});

test('no file in src/ imports itself back through others', () => {
  const edges = new Map([...files].filter(([f]) => f.startsWith(SRC)).map(([f, n]) => [f, new Set(n.local.filter((t) => t.startsWith(SRC) && t.endsWith('.ts')))]));
  assert.deepEqual(circles(edges).map((c) => c.map(rel)), []);
});

test('no folder of src/ imports a folder that imports it back; shared/ imports no other folder', () => {
  const edges = new Map<string, Set<string>>();
  const why = new Map<string, string>(); // "a→b" → one file-level import that makes the edge
  for (const [f, n] of files) {
    if (!f.startsWith(SRC)) continue;
    const a = folderOf(f);
    if (!edges.has(a)) edges.set(a, new Set());
    for (const t of n.local) {
      if (!t.startsWith(SRC)) continue;
      const b = folderOf(t);
      if (a === b) continue;
      edges.get(a)!.add(b);
      if (!why.has(`${a}→${b}`)) why.set(`${a}→${b}`, `${rel(f)} imports ${rel(t)}`);
    }
  }
  const loops = circles(edges);
  assert.deepEqual(loops.map((c) => c.flatMap((a) => c.filter((b) => edges.get(a)?.has(b)).map((b) => why.get(`${a}→${b}`)))), []);
  assert.deepEqual([...(edges.get('shared') ?? [])].map((b) => why.get(`shared→${b}`)), []);
  assert.deepEqual([...edges].filter(([, to]) => to.has('extension.ts')).map(([a]) => a), [], 'nothing imports the composition root');
});

test('the webview bundles import neither vscode nor Node, only their own code, src/ protocol and shared code, and packages', () => {
  const entries = fs.readdirSync(path.join(root, 'webview'), { withFileTypes: true })
    .filter((e) => e.isDirectory() && fs.existsSync(path.join(root, 'webview', e.name, 'main.ts')))
    .map((e) => path.join(root, 'webview', e.name, 'main.ts'));
  assert.deepEqual(entries.map((e) => path.basename(path.dirname(e))).sort(), ['compare', 'dashboard', 'inspector', 'panel', 'whatif']);
  const node = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
  const bad: string[] = [];
  for (const [f, n] of graphOf(entries).files) {
    for (const spec of n.external) if (spec === 'vscode' || node.has(spec)) bad.push(`${path.relative(root, f)} imports ${spec}`);
  }
  assert.deepEqual(bad, []);
});
