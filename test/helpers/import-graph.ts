// The import graph of the repo's TypeScript sources, read from the text (every `import ... from`,
// `export ... from`, `import('...')` and `require('...')`, type-only ones included: a type-only
// cycle still means two files that cannot be understood apart). Relative imports only; packages
// and node: built-ins are not edges.

import fs from 'node:fs';
import path from 'node:path';

/** file (repo-relative, no extension) -> the files it imports */
export type ImportGraph = Map<string, Set<string>>;

const IMPORT = /(?:^|[\s;])(?:import|export)\s[^'";]*?\sfrom\s*['"]([^'"]+)['"]|(?:^|[\s;])import\s*['"]([^'"]+)['"]|\b(?:import|require)\(\s*['"]([^'"]+)['"]\s*\)/g;

function sourcesUnder(root: string, dir: string, out: string[]): string[] {
  for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules') sourcesUnder(root, rel, out);
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

/** Comments removed, so an example in a comment is not an import. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

export function importGraph(root: string, dirs: readonly string[]): ImportGraph {
  const g: ImportGraph = new Map();
  for (const file of dirs.flatMap((d) => sourcesUnder(root, d, []))) {
    const from = file.replace(/\.ts$/, '');
    const edges = new Set<string>();
    for (const m of code(fs.readFileSync(path.join(root, file), 'utf8')).matchAll(IMPORT)) {
      const spec = m[1] ?? m[2] ?? m[3]!;
      if (!spec.startsWith('.')) continue;
      const target = path.normalize(path.join(path.dirname(from), spec));
      edges.add(fs.existsSync(path.join(root, target, 'index.ts')) ? path.join(target, 'index') : target);
    }
    g.set(from, edges);
  }
  return g;
}

/** Every cycle's files, one list per strongly connected component of more than one file (or a self-import). */
export function cycles(g: ImportGraph): string[][] {
  // Tarjan's algorithm, iterative enough for a few hundred files by plain recursion.
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || g.get(v)!.has(v)) found.push(scc.sort());
    }
  };
  for (const v of g.keys()) if (!index.has(v)) visit(v);
  return found;
}
