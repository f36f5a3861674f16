// selectChain's SNI index (lookups stay flat with 10,000 TLS hosts on one port) picks
// exactly the chain the plain in-order scan picks: a seeded random comparison over listeners that
// mix exact-SNI chains, wildcard and `*` server names, transport/ALPN/destination conditions and
// unconditional chains, queried with matching, missing, upper-case and unknown SNIs.
import t from 'tap';
import { chainMismatch, selectChain, type ChainInput } from '../../../../config/compile/lookup';
import { buildHostSet } from '../../../../config/compile/hosts';
import { parseCidr } from '../../../../config/compile/cidr';
import type { FilterChain, Listener } from '../../../../config/compile/snapshot';

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

const NAMES = Array.from({ length: 12 }, (_, i) => `svc-${i}.example.com`);

function scan(l: Listener, c: ChainInput): FilterChain | null {
  for (const ch of l.chains) if (chainMismatch(ch, c) === null) return ch;
  return null;
}

t.test('indexed selectChain equals the in-order scan', async (t) => {
  let checks = 0;
  for (let seed = 1; seed <= 150; seed++) {
    const r = rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
    const chains: FilterChain[] = Array.from({ length: 16 + Math.floor(r() * 30) }, (_, i) => {
      const x = r();
      const serverNames = x < 0.6 ? buildHostSet([pick(NAMES), ...(r() < 0.2 ? [pick(NAMES).toUpperCase()] : [])])
        : x < 0.7 ? buildHostSet(['*.example.com']) : x < 0.75 ? buildHostSet(['*']) : null;
      return {
        name: `c${i}`,
        match: {
          serverNames,
          transport: pick(['tls', 'tls', 'any', 'raw'] as const),
          applicationProtocols: r() < 0.15 ? ['h2'] : null,
          destinationPrefixes: r() < 0.2 ? [parseCidr('198.18.1.0/24')!] : null,
        },
        tls: null,
        filter: { kind: 'tcp', statPrefix: 'x', routes: [] },
      } as unknown as FilterChain;
    });
    const l: Listener = { name: `l${seed}`, address: '0.0.0.0', port: 443, protocol: 'tcp', chains, needsTlsInspection: true };
    for (let q = 0; q < 40; q++) {
      const sniPick = r();
      const c: ChainInput = {
        isTls: r() < 0.8,
        sni: sniPick < 0.1 ? null : sniPick < 0.2 ? 'other.org' : sniPick < 0.3 ? pick(NAMES).toUpperCase() : pick(NAMES),
        alpn: r() < 0.3 ? ['h2', 'http/1.1'] : null,
        dstIp: r() < 0.5 ? '198.18.1.7' : '198.18.2.7',
      };
      const want = scan(l, c);
      const got = selectChain(l, c);
      if (got !== want) t.fail(`seed ${seed}: ${JSON.stringify(c)}: got ${got?.name}, want ${want?.name}`);
      checks++;
    }
  }
  t.equal(checks, 6000);
});
