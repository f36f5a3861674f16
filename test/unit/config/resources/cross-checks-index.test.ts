// The host-pattern index the cross-resource checks use (load at scale) matches exactly
// the names hostMatches() matches: a seeded random comparison over exact names, `*.suffix` at
// several depths, `*`, wildcard queries and odd shapes (`*foo.com`, a leading dot).
import t from 'tap';
import { PatternIndex } from '../../../../config/resources/cross-checks';
import { hostMatches } from '../../../../config/resources/common';

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const NAMES = ['a.example.com', 'b.a.example.com', 'example.com', 'com', '.example.com', 'x.org', 'reviews.default.svc.cluster.local'];
const PATTERNS = ['*', '*.com', '*.example.com', '*.a.example.com', '*example.com', '*.org', '*.cluster.local', ...NAMES];
const QUERIES = [...NAMES, '*.example.com', '*.b.a.example.com', '*', 'a.example.org', 'example.comx'];

t.test('PatternIndex.some finds exactly the patterns hostMatches accepts; first index as Array.find', async (t) => {
  let checks = 0;
  for (let seed = 1; seed <= 200; seed++) {
    const r = rng(seed);
    const patterns = Array.from({ length: 1 + Math.floor(r() * 10) }, () => PATTERNS[Math.floor(r() * PATTERNS.length)]!);
    const idx = new PatternIndex<number>();
    patterns.forEach((p, i) => idx.add(p, i));
    for (const q of QUERIES) {
      const want = patterns.map((p, i) => (hostMatches(q, p) ? i : -1)).filter((i) => i >= 0);
      const seen = new Set<number>();
      t.equal(idx.some(q, (i) => { seen.add(i); return false; }), false);
      t.same([...seen].sort((a, b) => a - b), want, `seed ${seed}: ${q} against ${patterns.join(' ')}`);
      if (want.length > 0) t.equal(idx.some(q, (i) => i === want[want.length - 1]), true, 'stops at the first true');
      checks++;
    }
  }
  t.ok(checks >= 2000);
});
