// A snapshot cut into pieces and put back together (config/sources/snapshot-pieces.ts) is the graph
// one structured clone + refreeze gives: same values, key order, Map/Set order, prototypes and
// freezing, and the same sharing (an object reached along two paths is one object after, as
// before). Checked for every seed sample and a 200-service config at piece sizes from tiny (every
// container joined from runs) to whole, and for the shapes the splitter must not cut (a BigInt, a
// cycle, an array hole: one raw piece). Pieces cross a real structured clone (v8.serialize).
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import { Assembler, NodeKind, splitGraph, type Piece } from '../../../../config/sources/snapshot-pieces';
import { compile } from '../../../../config/compile/index';
import { refreeze } from '../../../../config/compile/freeze';
import { loadPaths, loadText } from '../../../../config/resources/load';
import { scaleYaml } from '../../../../bench/config-scale';
import { SAMPLES, SIDECAR, GATEWAY } from '../../../helpers/seed-samples';
import { sameShape, sameSharing } from '../../../helpers/same-graph';


/** Split, send each piece through a real structured clone, assemble. */
function roundTrip(root: unknown, pieceBytes: number): { got: unknown; raw: boolean; pieces: number; kinds: Set<NodeKind> } {
  const split = splitGraph(root, pieceBytes);
  const a = new Assembler(split.raw);
  const kinds = new Set<NodeKind>();
  for (const p of split.pieces) {
    for (const k of p.kinds) kinds.add(k);
    a.add(v8.deserialize(v8.serialize(p)) as Piece);
  }
  return { got: a.root, raw: split.raw, pieces: split.pieces.length, kinds };
}

/** What one clone gives (the path before pieces): the reference for values, freezing and sharing. */
function oneClone<T>(root: T): T {
  return refreeze(v8.deserialize(v8.serialize(root)) as T);
}

function checkSame(t: Test, want: unknown, got: unknown, what: string): void {
  const problems: string[] = [];
  sameShape(want, got, 'root', problems);
  t.same(problems, [], `${what}: same values, key order, prototypes, freezing`);
  const sharing = sameSharing(want, got);
  t.equal(sharing.broken, 0, `${what}: same sharing (${sharing.objects} objects)`);
}

t.test('every seed sample, sidecar and gateway: the assembled snapshot is the compiled one, at every piece size', async (t) => {
  const samples = fs.readdirSync(SAMPLES).filter((d) => /^s\d/.test(d)).sort();
  t.ok(samples.length >= 10, 'the seed samples are there');
  let split = 0;
  for (const s of samples) {
    for (const opts of [SIDECAR, GATEWAY]) {
      const loaded = loadPaths([path.join(SAMPLES, s)], { defaultNamespace: opts.namespace });
      if (loaded.messages.some((m) => m.level === 'error')) continue;
      const want = compile(loaded.resources, opts);
      for (const bytes of [16, 300, 4096, 1 << 30]) {
        const r = roundTrip(want, bytes);
        t.equal(r.raw, false, `${s} ${opts.role} @${bytes}: splittable`);
        if (r.pieces > 1) split++;
        checkSame(t, want, r.got, `${s} ${opts.role} @${bytes}`);
      }
    }
  }
  t.ok(split > 20, 'most samples went in several pieces');
});

t.test('200 services: every kind of node is used, values and sharing survive, pieces stay near the size asked', async (t) => {
  const loaded = loadText(scaleYaml(200), 'scale.yaml', { defaultNamespace: 'default' });
  t.same(loaded.messages.filter((m) => m.level === 'error'), []);
  const want = compile(loaded.resources, { ...SIDECAR, labels: { app: 'bench' } });
  const clone = oneClone(want);
  t.ok(sameSharing(want, clone).objects > 10_000, 'a graph of some size');
  for (const bytes of [64, 8192, 65536]) {
    const r = roundTrip(want, bytes);
    t.ok(r.pieces > 1, `@${bytes}: ${r.pieces} pieces`);
    t.ok(r.kinds.has(NodeKind.Segment) && r.kinds.has(NodeKind.JoinMap) && r.kinds.has(NodeKind.JoinArray), `@${bytes}: big Maps and arrays went as joined runs`);
    checkSame(t, want, r.got, `@${bytes}`);
    checkSame(t, clone, r.got, `@${bytes} vs one clone`);
  }
  const split = splitGraph(want, 65536);
  const sizes = split.pieces.map((p) => v8.serialize(p).length);
  t.ok(Math.max(...sizes) < 4 * 65536, `the largest piece (${Math.max(...sizes)} bytes) stays within a few times the size asked`);
});

t.test('shapes compile does not make but a graph may hold: object keys, shared Set members, __proto__ keys, nested big containers', async (t) => {
  const sharedKey = Object.freeze({ k: 1 });
  const shared = Object.freeze({ s: 'shared' });
  const big = Array.from({ length: 300 }, (_, i) => ({ i, tag: i % 7 === 0 ? shared : null, name: 'n' + i }));
  const protoKey = JSON.parse('{"__proto__": {"polluted": true}, "after": 1}') as Record<string, unknown>;
  const root = {
    list: big,
    map: new Map<unknown, unknown>([[sharedKey, 'by object'], ...big.map((o) => [o.name, o] as const)]),
    set: new Set<unknown>([shared, ...big.slice(0, 100)]),
    keyAgain: sharedKey,
    protoKey,
    wide: Object.fromEntries(big.map((o) => ['k' + o.i, o.name])),
    re: /a.+b/i,
    when: new Date(0),
    nested: { deeper: { list: big.slice(0, 50).map((o) => [o, o.name]) } },
  };
  for (const bytes of [8, 100, 2000]) {
    const r = roundTrip(root, bytes);
    t.equal(r.raw, false);
    t.ok(r.pieces > 3, `@${bytes}: ${r.pieces} pieces`);
    const want = oneClone(root);
    checkSame(t, want, r.got, `@${bytes}`);
    const got = r.got as typeof root;
    t.equal(Object.getPrototypeOf(got.protoKey), Object.prototype, 'an own __proto__ key stays a key');
    t.same(Object.keys(got.protoKey), ['__proto__', 'after']);
    t.equal(got.map.get([...got.map.keys()][0]), 'by object');
    t.equal([...got.map.keys()][0], got.keyAgain, 'an object Map key is the same object as elsewhere');
    t.equal(got.list[0]!.tag, [...got.set][0], 'a Set member is the same object as elsewhere');
    t.throws(() => (got.map as Map<unknown, unknown>).set('x', 1), TypeError, 'Maps are immutable again');
    t.ok(Object.isFrozen(got.wide) && Object.isFrozen(got.list) && Object.isFrozen(got.list[299]));
  }
});

t.test('what cannot be split exactly goes whole, as one raw piece', async (t) => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic['self'] = { back: cyclic };
  // eslint-disable-next-line no-sparse-arrays
  const holes = { list: [1, , 3] };
  const bigint = { n: 10n, list: Array.from({ length: 100 }, (_, i) => ({ i })) };
  for (const [name, root] of [['cycle', cyclic], ['array hole', holes], ['BigInt', bigint]] as const) {
    const split = splitGraph(root, 8);
    t.equal(split.raw, true, `${name}: raw`);
    t.equal(split.pieces.length, 1, `${name}: one piece`);
    const a = new Assembler(split.raw);
    a.add(v8.deserialize(v8.serialize(split.pieces[0])) as Piece);
    if (root === cyclic) {
      const got = a.root as typeof cyclic;
      t.equal((got['self'] as { back: unknown }).back, got, 'cycle: kept');
      t.ok(Object.isFrozen(got) && Object.isFrozen(got['self']), 'cycle: frozen');
      t.equal(sameSharing(cyclic, got).broken, 0, 'cycle: same sharing');
    } else {
      checkSame(t, oneClone(root), a.root, name);
    }
  }
  t.equal((splitGraph('text').pieces[0]!.nodes[0]), 'text', 'a primitive root is one piece');
});

t.test('a piece that links to a node not received yet is an error, not a wrong graph', async (t) => {
  const split = splitGraph({ list: Array.from({ length: 50 }, (_, i) => ({ i })) }, 16);
  t.ok(split.pieces.length > 2);
  const a = new Assembler(false);
  t.throws(() => a.add(split.pieces[split.pieces.length - 1]!), /before it arrived/);
});
