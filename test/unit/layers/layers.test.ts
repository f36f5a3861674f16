// The layer rule of proxy/ARCHITECTURE.md and config/ARCHITECTURE.md, checked on the sources: the
// data path only calls down (listener -> l4 | l7 -> upstream -> transport), the config compiler
// never sees the proxy, and no two files import each other, even for a type.

import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { cycles, importGraph } from '../../helpers/import-graph';

const ROOT = path.resolve(__dirname, '..', '..', '..', '..');
const graph = importGraph(ROOT, ['proxy', 'config']);

/** [importer's directory, directories it must not import from, why] */
const RULES: readonly [string, readonly string[], string][] = [
  ['config/', ['proxy/'], 'the compiler is pure: the proxy reads its snapshot, never the reverse'],
  ['proxy/l4/', ['proxy/listener/'], 'l4 executes the plan the listener handed it'],
  ['proxy/l7/', ['proxy/listener/'], 'l7 executes the chain the listener handed it'],
  ['proxy/upstream/', ['proxy/l4/', 'proxy/l7/', 'proxy/listener/'], 'upstream connects; it does not know who asked'],
  ['proxy/transport/', ['proxy/l4/', 'proxy/l7/', 'proxy/listener/', 'proxy/upstream/'], 'the transport is the bottom of the data path'],
];

t.test('the sources were read', async (t) => {
  t.ok(graph.size > 100, `${graph.size} files`);
  t.ok(graph.get('proxy/runtime')?.has('proxy/listener/gateway'), 'an import is seen as an edge');
});

for (const [dir, banned, why] of RULES) {
  t.test(`${dir} imports nothing from ${banned.join(', ')} (${why})`, async (t) => {
    const bad: string[] = [];
    for (const [from, to] of graph) {
      if (!from.startsWith(dir)) continue;
      for (const target of to) if (banned.some((b) => target.startsWith(b))) bad.push(`${from} -> ${target}`);
    }
    t.same(bad, [], bad.join('\n'));
  });
}

t.test('no import cycles in proxy/ and config/ (type-only imports included)', async (t) => {
  const found = cycles(graph);
  t.same(found, [], found.map((c) => c.join(' <-> ')).join('\n'));
});

t.test('Node internals (process.binding, _handle, _parent) are used only in proxy/transport/', async (t) => {
  const bad: string[] = [];
  for (const file of graph.keys()) {
    if (!file.startsWith('proxy/') || file.startsWith('proxy/transport/')) continue;
    const text = fs.readFileSync(path.join(ROOT, file + '.ts'), 'utf8');
    text.split('\n').forEach((line, i) => {
      if (/process\.binding|\._handle|_parent/.test(line)) bad.push(`${file}.ts:${i + 1}: ${line.trim()}`);
    });
  }
  t.same(bad, [], bad.join('\n'));
});

t.test('the cycle finder finds a cycle', async (t) => {
  const g = new Map([['a', new Set(['b'])], ['b', new Set(['c'])], ['c', new Set(['a'])], ['d', new Set(['a'])]]);
  t.same(cycles(g), [['a', 'b', 'c']]);
});
