// Each load-balancing policy shows its behaviour, not just that it returns a host: the order of
// round robin (and its weighted interleaving), least-request avoiding busy hosts, consistent-hash
// stickiness and minimal remapping, random spread within a stated binomial bound.

import t from 'tap';
import type { Endpoint } from '../../../../config/compile/snapshot';
import { createLoadBalancer, type PickContext } from '../../../../proxy/upstream/lb';
import { UpstreamHost } from '../../../../proxy/upstream/host';

function host(ip: string, weight = 1): UpstreamHost {
  const e: Endpoint = { address: ip, port: 80, labels: {}, weight, locality: '', network: '' };
  return new UpstreamHost(ip, 80, '', e);
}

const NO_KEY: PickContext = { sourceIp: '198.18.0.1', hashValue: null };

t.test('ROUND_ROBIN visits hosts in order, then again', async (t) => {
  const hosts = [host('10.0.0.1'), host('10.0.0.2'), host('10.0.0.3')];
  const lb = createLoadBalancer({ kind: 'ROUND_ROBIN' });
  const seq = Array.from({ length: 7 }, () => lb.pick(hosts, NO_KEY)!.address);
  t.same(seq, ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.1']);
  t.equal(lb.pick([], NO_KEY), null, 'no hosts: null (the caller answers UH)');
});

t.test('ROUND_ROBIN with endpoint weights 3:1 sends exactly 3 of every 4, interleaved', async (t) => {
  const a = host('10.0.0.1', 3);
  const b = host('10.0.0.2', 1);
  const lb = createLoadBalancer({ kind: 'ROUND_ROBIN' });
  const seq = Array.from({ length: 8 }, () => lb.pick([a, b], NO_KEY)!.address.slice(-1)).join('');
  t.equal(seq, '11211121', 'smooth weighted round robin: never two picks of b in a row, a 6 of 8');
});

t.test('LEAST_REQUEST prefers the idle host', async (t) => {
  const lb = createLoadBalancer({ kind: 'LEAST_REQUEST' });
  const busy = host('10.0.0.1');
  const idle = host('10.0.0.2');
  busy.counters.rq_active = 3;
  // Two hosts: the two choices are always both hosts, so the idle one wins every time.
  for (let i = 0; i < 200; i++) t.equal(lb.pick([busy, idle], NO_KEY), idle);
  // Four hosts, one very busy: it can only lose a comparison, so it is never picked.
  const hosts = [host('10.0.0.3'), host('10.0.0.4'), host('10.0.0.5'), busy];
  busy.counters.rq_active = 10;
  const seen = new Map<string, number>();
  for (let i = 0; i < 2000; i++) {
    const h = lb.pick(hosts, NO_KEY)!;
    seen.set(h.address, (seen.get(h.address) ?? 0) + 1);
  }
  t.equal(seen.get('10.0.0.1'), undefined, 'the busy host is never chosen while others are idle');
  t.equal(seen.size, 3, 'the idle hosts all get traffic');
  t.end();
});

t.test('LEAST_REQUEST divides load by weight', async (t) => {
  const lb = createLoadBalancer({ kind: 'LEAST_REQUEST' });
  const heavy = host('10.0.0.1', 4);
  const light = host('10.0.0.2', 1);
  heavy.counters.rq_active = 3; // 3/4 per unit of weight
  light.counters.rq_active = 1; // 1/1
  for (let i = 0; i < 100; i++) t.equal(lb.pick([heavy, light], NO_KEY), heavy);
  t.end();
});

t.test('CONSISTENT_HASH by source IP: sticky, spread, and only the removed host\'s clients move', async (t) => {
  const lb = createLoadBalancer({ kind: 'CONSISTENT_HASH', key: 'sourceIp', name: '' });
  const hosts = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'].map((ip) => host(ip));
  const clients = Array.from({ length: 1000 }, (_, i) => `198.18.${i >> 8}.${i & 255}`);
  const before = new Map<string, string>();
  for (const ip of clients) {
    const first = lb.pick(hosts, { sourceIp: ip, hashValue: null })!.address;
    for (let k = 0; k < 3; k++) t.equal(lb.pick(hosts, { sourceIp: ip, hashValue: null })!.address, first);
    before.set(ip, first);
  }
  const counts = new Map<string, number>();
  for (const h of before.values()) counts.set(h, (counts.get(h) ?? 0) + 1);
  // Binomial(1000, 1/4): sd 13.7; 175..325 is more than 5 sd either side.
  for (const [h, n] of counts) t.ok(n > 175 && n < 325, `${h} has ${n} of 1000 clients (expected ~250)`);

  const without3 = hosts.filter((h) => h.address !== '10.0.0.3');
  let moved = 0;
  for (const ip of clients) {
    const now = lb.pick(without3, { sourceIp: ip, hashValue: null })!.address;
    if (before.get(ip) === '10.0.0.3') moved++;
    else t.equal(now, before.get(ip), `client ${ip} keeps its host`);
  }
  t.equal(moved, counts.get('10.0.0.3'), 'exactly the removed host\'s clients were remapped');
  t.end();
});

t.test('CONSISTENT_HASH weights: a weight-3 host gets about three times the keys', async (t) => {
  const lb = createLoadBalancer({ kind: 'CONSISTENT_HASH', key: 'header', name: 'x-user' });
  const a = host('10.0.0.1', 3);
  const b = host('10.0.0.2', 1);
  let toA = 0;
  for (let i = 0; i < 4000; i++) if (lb.pick([a, b], { sourceIp: '', hashValue: 'user-' + i }) === a) toA++;
  // Binomial(4000, 0.75): sd 27.4; ±150 is 5.5 sd.
  t.ok(Math.abs(toA - 3000) < 150, `${toA} of 4000 keys on the weight-3 host`);
  const random = new Set<string>();
  for (let i = 0; i < 200; i++) random.add(lb.pick([a, b], { sourceIp: '', hashValue: null })!.address);
  t.equal(random.size, 2, 'no hash key (header absent): a random host, as Envoy');
});

t.test('RANDOM spreads evenly within a binomial bound', async (t) => {
  const lb = createLoadBalancer({ kind: 'RANDOM' });
  const hosts = [host('10.0.0.1'), host('10.0.0.2'), host('10.0.0.3')];
  const n = 30_000;
  const counts = new Map<UpstreamHost, number>();
  for (let i = 0; i < n; i++) {
    const h = lb.pick(hosts, NO_KEY)!;
    counts.set(h, (counts.get(h) ?? 0) + 1);
  }
  // Binomial(30000, 1/3): sd = sqrt(n p (1-p)) = 81.6. A 5 sd band (±408) fails by chance with
  // probability ~6e-7 per host.
  for (const h of hosts) t.ok(Math.abs(counts.get(h)! - n / 3) < 408, `${h.address}: ${counts.get(h)} of ${n}`);
  // Consecutive picks are not a rotation (a round robin in disguise would give 3 distinct per 3 picks).
  let repeats = 0;
  let last: UpstreamHost | null = null;
  for (let i = 0; i < 300; i++) {
    const h = lb.pick(hosts, NO_KEY)!;
    if (h === last) repeats++;
    last = h;
  }
  t.ok(repeats > 40, `the same host is drawn twice in a row sometimes (${repeats} of 300, expected ~100)`);
});
