// Load balancing over a cluster's hosts, per DestinationRule `loadBalancer` (Istio's default is
// LEAST_REQUEST). Each policy is a small object created once per cluster
// generation; `pick` runs per connection/request and allocates nothing.
//
// Endpoint `weight` (ServiceEntry endpoints) is honoured as Envoy does: ROUND_ROBIN and
// LEAST_REQUEST are weighted, RANDOM is not (Envoy's random LB ignores weights), consistent hashing
// gives a host a share of keys proportional to its weight. Weights are read from `lbWeight`: the
// endpoint weight, lowered while a host warms up (warmup.ts). PASSTHROUGH is decided by the cluster
// (the original destination is used; no host list is consulted), see UpstreamCluster.pick.

import type { LbPolicy } from '../../config/compile/snapshot';
import { hashKey, type UpstreamHost } from './host';

export interface PickContext {
  /** downstream remote IP (consistentHash useSourceIp) */
  readonly sourceIp: string;
  /** header / cookie / query value for consistentHash on HTTP; null otherwise */
  readonly hashValue: string | null;
}

export interface LoadBalancer {
  pick(hosts: readonly UpstreamHost[], ctx: PickContext): UpstreamHost | null;
}

function allWeightsEqual(hosts: readonly UpstreamHost[]): boolean {
  const w = hosts[0]!.lbWeight;
  for (let i = 1; i < hosts.length; i++) if (hosts[i]!.lbWeight !== w) return false;
  return true;
}

/**
 * Plain rotation when weights are equal (the common case); otherwise smooth weighted round robin
 * (each pick: every host gains its weight, the highest is chosen and loses the total), which
 * interleaves hosts as Envoy's EDF scheduler does instead of sending bursts to the heaviest.
 */
class RoundRobin implements LoadBalancer {
  private next = 0;
  pick(hosts: readonly UpstreamHost[]): UpstreamHost | null {
    const n = hosts.length;
    if (n === 0) return null;
    if (n === 1) return hosts[0]!;
    if (allWeightsEqual(hosts)) {
      const h = hosts[this.next % n]!;
      this.next = (this.next + 1) % 1_000_000_007;
      return h;
    }
    let best: UpstreamHost = hosts[0]!;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const h = hosts[i]!;
      h.lbCurrentWeight += h.lbWeight;
      total += h.lbWeight;
      if (h.lbCurrentWeight > best.lbCurrentWeight) best = h;
    }
    best.lbCurrentWeight -= total;
    return best;
  }
}

class RandomLb implements LoadBalancer {
  pick(hosts: readonly UpstreamHost[]): UpstreamHost | null {
    if (hosts.length === 0) return null;
    return hosts[Math.floor(Math.random() * hosts.length)]!;
  }
}

/**
 * Envoy's LEAST_REQUEST with choice_count 2: two distinct random hosts, the one with fewer active
 * requests (TCP: open proxied connections) wins; with unequal weights the load is divided by the
 * weight first. Ties go to the first draw, so equal hosts still spread randomly.
 */
class LeastRequest implements LoadBalancer {
  pick(hosts: readonly UpstreamHost[]): UpstreamHost | null {
    const n = hosts.length;
    if (n === 0) return null;
    if (n === 1) return hosts[0]!;
    const i = Math.floor(Math.random() * n);
    let j = Math.floor(Math.random() * (n - 1));
    if (j >= i) j++;
    const a = hosts[i]!;
    const b = hosts[j]!;
    return b.counters.rq_active / b.lbWeight < a.counters.rq_active / a.lbWeight ? b : a;
  }
}


/** murmur3's finaliser: spreads a combined key/host hash over all 32 bits. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Consistent hashing by rendezvous (highest random weight): each host scores hash(key, host) and
 * the best wins. Like Envoy's ring hash, a key keeps its host while that host stays, and removing
 * a host moves only the keys it had (nothing else reshuffles). Weighted with the
 * `-weight / ln(u)` score, so a host's share of keys is proportional to its weight. No key (an
 * HTTP request without the header/cookie) falls back to a random host, as Envoy does.
 */
class ConsistentHash implements LoadBalancer {
  private readonly bySource: boolean;
  constructor(bySource: boolean) {
    this.bySource = bySource;
  }
  pick(hosts: readonly UpstreamHost[], ctx: PickContext): UpstreamHost | null {
    const n = hosts.length;
    if (n === 0) return null;
    const key = this.bySource ? ctx.sourceIp : ctx.hashValue;
    if (key === null) return hosts[Math.floor(Math.random() * n)]!;
    if (n === 1) return hosts[0]!;
    const k = hashKey(key);
    const weighted = !allWeightsEqual(hosts);
    let best: UpstreamHost = hosts[0]!;
    let bestScore = -Infinity;
    for (let i = 0; i < n; i++) {
      const h = hosts[i]!;
      const r = mix(k ^ h.keyHash);
      // Unweighted: the raw hash orders hosts. Weighted: u in (0,1), score -w/ln(u) (Schindelhauer).
      const score = weighted ? -h.lbWeight / Math.log((r + 1) / 4294967297) : r;
      if (score > bestScore) {
        bestScore = score;
        best = h;
      }
    }
    return best;
  }
}

export function createLoadBalancer(policy: LbPolicy): LoadBalancer {
  switch (policy.kind) {
    case 'ROUND_ROBIN':
      return new RoundRobin();
    case 'RANDOM':
      return new RandomLb();
    case 'CONSISTENT_HASH':
      return new ConsistentHash(policy.key === 'sourceIp');
    case 'PASSTHROUGH': // the cluster uses the original destination; this is only a fallback
    case 'LEAST_REQUEST':
    default:
      return new LeastRequest();
  }
}
