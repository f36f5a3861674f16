// Load balancing over a cluster's healthy hosts, per DestinationRule `loadBalancer` (Istio's
// default is LEAST_REQUEST, ENVOY-ISTIO.md §3.8). Each policy is a small object created once per
// cluster generation; `pick` runs per connection/request and allocates nothing.

import { createHash } from 'node:crypto';
import type { LbPolicy } from '../../config/compile/snapshot';
import type { UpstreamHost } from './host';

export interface PickContext {
  /** downstream remote IP (consistentHash useSourceIp) */
  readonly sourceIp: string;
  /** header / cookie / query value for consistentHash on HTTP; null otherwise */
  readonly hashValue: string | null;
}

export interface LoadBalancer {
  pick(hosts: readonly UpstreamHost[], ctx: PickContext): UpstreamHost | null;
}

class RoundRobin implements LoadBalancer {
  private next = 0;
  pick(hosts: readonly UpstreamHost[]): UpstreamHost | null {
    if (hosts.length === 0) return null;
    const h = hosts[this.next % hosts.length]!;
    this.next = (this.next + 1) % 1_000_000_007;
    return h;
  }
}

class RandomLb implements LoadBalancer {
  pick(hosts: readonly UpstreamHost[]): UpstreamHost | null {
    if (hosts.length === 0) return null;
    return hosts[Math.floor(Math.random() * hosts.length)]!;
  }
}

/** Envoy's LEAST_REQUEST with choice_count 2: power of two random choices, weight-aware. */
class LeastRequest implements LoadBalancer {
  pick(hosts: readonly UpstreamHost[]): UpstreamHost | null {
    const n = hosts.length;
    if (n === 0) return null;
    if (n === 1) return hosts[0]!;
    const a = hosts[Math.floor(Math.random() * n)]!;
    let b = hosts[Math.floor(Math.random() * n)]!;
    if (b === a) b = hosts[(hosts.indexOf(a) + 1) % n]!;
    // Envoy compares active requests scaled by weight when weights differ.
    const sa = (a.counters.rq_active + a.counters.cx_active) / a.weight;
    const sb = (b.counters.rq_active + b.counters.cx_active) / b.weight;
    return sb < sa ? b : a;
  }
}

/** Ring-hash-like consistent hashing: hash the key, pick by rendezvous (highest random weight). */
class ConsistentHash implements LoadBalancer {
  private readonly bySource: boolean;
  constructor(bySource: boolean) {
    this.bySource = bySource;
  }
  pick(hosts: readonly UpstreamHost[], ctx: PickContext): UpstreamHost | null {
    if (hosts.length === 0) return null;
    const key = this.bySource ? ctx.sourceIp : ctx.hashValue;
    if (key === null) return hosts[Math.floor(Math.random() * hosts.length)]!;
    let best: UpstreamHost | null = null;
    let bestScore = -1;
    for (const h of hosts) {
      // Rendezvous hashing keeps the mapping stable when hosts come and go, as a ring does.
      const score = createHash('sha1').update(key).update('\0').update(h.key).digest().readUInt32BE(0) * h.weight;
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
    case 'PASSTHROUGH': // the original destination is used instead; hosts are not consulted
    case 'LEAST_REQUEST':
    default:
      return new LeastRequest();
  }
}
