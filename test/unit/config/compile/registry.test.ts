// Registry's indexed lookups (config at scale) give exactly what the rules of
// DestinationRule lookup say, which the old linear scans spelled out: the reference functions below
// are those scans, and a seeded random property test compares them with the index over many mixed
// configs (exact, `*.suffix` at several depths, `*`, wildcard service hosts, several namespaces,
// DRs and VSs repeating hosts, gateway-only VSs). Named cases pin the precedence rules on their own.
import t from 'tap';
import { Registry, type BoundVirtualService } from '../../../../config/compile/registry';
import { hostCovers } from '../../../../config/compile/hosts';
import { expandHost } from '../../../../config/compile/names';
import type { DestinationRule } from '../../../../config/resources/types';
import { SIDECAR, dr, resources, se, vs } from '../../../fixtures/compile/resources';

// ------------------------------------------------------------------ reference (the pre-index scans)

function refDestinationRule(drs: readonly DestinationRule[], proxyNs: string, host: string, serviceNs: string | null): DestinationRule | null {
  let best: DestinationRule | null = null;
  let bestScore = -1;
  for (const d of drs) {
    const drHost = expandHost(d.spec.host, d.metadata.namespace);
    if (!hostCovers(drHost, host)) continue;
    const specificity = drHost === host ? 1_000_000 : drHost.length * 10;
    const nsRank = d.metadata.namespace === proxyNs ? 2 : d.metadata.namespace === serviceNs ? 1 : 0;
    if (specificity + nsRank > bestScore) {
      best = d;
      bestScore = specificity + nsRank;
    }
  }
  return best;
}

function refMeshVirtualService(all: readonly BoundVirtualService[], host: string): BoundVirtualService | null {
  let wildcard: BoundVirtualService | null = null;
  for (const b of all) {
    if (!b.gateways.includes('mesh')) continue;
    if (b.hosts.includes(host)) return b;
    if (wildcard === null && b.hosts.some((h) => hostCovers(h, host))) wildcard = b;
  }
  return wildcard;
}

// ------------------------------------------------------------------ named precedence cases

const svc = (host: string, ns = 'default') => se(`se-${host.replace(/\*/g, 'w')}`, ns, { hosts: [host], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'DNS' });

t.test('DestinationRule: exact beats every wildcard; longest suffix beats shorter and *; namespace ranks within one host', async (t) => {
  const rules = [
    dr('star', 'default', { host: '*' }),
    dr('com', 'default', { host: '*.com' }),
    dr('example-other', 'other', { host: '*.example.com' }),
    dr('example-svc', 'svcns', { host: '*.example.com' }),
    dr('exact-other', 'other', { host: 'a.b.example.com' }),
  ];
  const reg = new Registry(resources(svc('a.b.example.com', 'svcns'), ...rules), SIDECAR);
  t.equal(reg.destinationRuleFor('a.b.example.com', 'svcns')?.metadata.name, 'exact-other', 'an exact host in any namespace beats a wildcard in the proxy namespace');
  t.equal(reg.destinationRuleFor('x.b.example.com', 'svcns')?.metadata.name, 'example-svc', 'same wildcard: the service namespace beats another');
  t.equal(reg.destinationRuleFor('x.b.example.com', 'nobody')?.metadata.name, 'example-other', 'same wildcard, no namespace preference: load order');
  t.equal(reg.destinationRuleFor('x.org.com', null)?.metadata.name, 'com', 'longest covering suffix');
  t.equal(reg.destinationRuleFor('example.com', null)?.metadata.name, 'com', '*.example.com does not cover example.com itself');
  t.equal(reg.destinationRuleFor('localhost', null)?.metadata.name, 'star');
  const mine = new Registry(resources(...rules, dr('example-mine', 'default', { host: '*.example.com' })), SIDECAR);
  t.equal(mine.destinationRuleFor('x.b.example.com', 'svcns')?.metadata.name, 'example-mine', 'the proxy namespace beats the service namespace');
  const none = new Registry(resources(dr('com', 'default', { host: '*.com' })), SIDECAR);
  t.equal(none.destinationRuleFor('a.org', null), null);
  const wildSvc = new Registry(resources(dr('w', 'other', { host: '*.wikipedia.org' }), dr('org', 'default', { host: '*.org' })), SIDECAR);
  t.equal(wildSvc.destinationRuleFor('*.wikipedia.org', null)?.metadata.name, 'w', 'a wildcard service host equal to a DR host is an exact match');
  t.equal(wildSvc.destinationRuleFor('*.en.wikipedia.org', null)?.metadata.name, 'w', 'a narrower wildcard host is covered by the wider rule');
});

t.test('DestinationRule: exportTo and workloadSelector hide rules from the index', async (t) => {
  const reg = new Registry(resources(
    dr('hidden', 'team', { host: 'a.example.com', exportTo: ['.'] }),
    dr('not-me', 'default', { host: 'a.example.com', workloadSelector: { matchLabels: { app: 'other' } } }),
    dr('me', 'default', { host: '*.example.com', workloadSelector: { matchLabels: { app: 'sleep' } } }),
  ), SIDECAR);
  t.equal(reg.destinationRuleFor('a.example.com', 'team')?.metadata.name, 'me');
});

t.test('mesh VirtualService: first exact host in load order, else the first (not the longest) covering wildcard', async (t) => {
  const reg = new Registry(resources(
    vs('gw-only', 'default', { hosts: ['a.example.com'], gateways: ['istio-system/egress'], http: [] }),
    vs('com', 'default', { hosts: ['*.com'], http: [] }),
    vs('example', 'default', { hosts: ['*.example.com'], http: [] }),
    vs('exact', 'default', { hosts: ['b.example.com', 'a.example.com'], http: [] }),
    vs('exact-2', 'default', { hosts: ['a.example.com'], http: [] }),
    vs('star', 'default', { hosts: ['*'], http: [] }),
  ), SIDECAR);
  t.equal(reg.meshVirtualServiceFor('a.example.com')?.vs.metadata.name, 'exact', 'gateway-only VS is skipped; exact beats an earlier wildcard');
  t.equal(reg.meshVirtualServiceFor('z.example.com')?.vs.metadata.name, 'com', 'the first covering wildcard in load order wins');
  t.equal(reg.meshVirtualServiceFor('z.org')?.vs.metadata.name, 'star');
  const shortName = new Registry(resources(vs('short', 'bar', { hosts: ['reviews'], http: [] })), SIDECAR);
  t.equal(shortName.meshVirtualServiceFor('reviews.bar.svc.cluster.local')?.vs.metadata.name, 'short', 'short names expand in the VS namespace');
  t.equal(shortName.meshVirtualServiceFor('reviews'), null);
});

// ------------------------------------------------------------------ property test

/** Deterministic PRNG (mulberry32) so a failure reproduces. */
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

const LABELS = ['a', 'b', 'c'];
const DOMAINS = ['example.com', 'b.example.com', 'com', 'org'];
const NAMESPACES = ['default', 'bar', 'istio-system'];

function randomHost(r: () => number, allowWild: boolean): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const x = r();
  if (allowWild && x < 0.08) return '*';
  if (allowWild && x < 0.35) return `*.${pick(DOMAINS)}`;
  if (x < 0.45) return pick(['reviews', 'ratings']); // short name: expands per namespace
  if (x < 0.5) return `*.${pick(LABELS)}.${pick(DOMAINS)}`.slice(allowWild ? 0 : 2);
  return `${pick(LABELS)}.${pick(DOMAINS)}`;
}

t.test('indexed lookups equal the linear reference on random configs', async (t) => {
  let checks = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const r = rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
    const drs = Array.from({ length: 1 + Math.floor(r() * 8) }, (_, i) => dr(`dr${i}`, pick(NAMESPACES), { host: randomHost(r, true) }));
    const vss = Array.from({ length: 1 + Math.floor(r() * 6) }, (_, i) => vs(`vs${i}`, pick(NAMESPACES), {
      hosts: Array.from({ length: 1 + Math.floor(r() * 3) }, () => randomHost(r, true)),
      ...(r() < 0.2 ? { gateways: ['istio-system/egress'] } : r() < 0.1 ? { gateways: ['mesh', 'istio-system/egress'] } : {}),
      http: [],
    }));
    const reg = new Registry(resources(...drs, ...vss), { ...SIDECAR, namespace: pick(NAMESPACES) });
    const queries = new Set<string>();
    for (let q = 0; q < 12; q++) queries.add(expandHost(randomHost(r, q % 3 === 0), pick(NAMESPACES)));
    for (const d of drs) queries.add(expandHost(d.spec.host, d.metadata.namespace));
    for (const host of queries) {
      for (const serviceNs of [...NAMESPACES, null]) {
        const want = refDestinationRule(drs, reg.opts.namespace, host, serviceNs);
        const got = reg.destinationRuleFor(host, serviceNs);
        if (got !== want) t.fail(`seed ${seed}: DR for ${host} (service ns ${serviceNs}): got ${got?.metadata.name}, want ${want?.metadata.name}`);
        checks++;
      }
      const wantVs = refMeshVirtualService(reg.virtualServices, host);
      const gotVs = reg.meshVirtualServiceFor(host);
      if (gotVs !== wantVs) t.fail(`seed ${seed}: VS for ${host}: got ${gotVs?.vs.metadata.name}, want ${wantVs?.vs.metadata.name}`);
      checks++;
    }
  }
  t.ok(checks > 10_000, `${checks} lookups compared`);
});
