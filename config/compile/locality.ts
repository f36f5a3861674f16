// DestinationRule `localityLbSetting` -> endpoint priorities and weights for this proxy, as Istio's
// pilot computes them (pilot/pkg/networking/core/loadbalancer/loadbalancer.go), so the data plane
// only spreads load by priority (proxy/upstream/locality.ts) and weight:
//
// - `distribute` (the first rule whose `from` matches the proxy's locality): each locality gets the
//   weight of the `to` entries matching it (an entry matching several localities is split evenly
//   among them); a locality no entry names gets nothing. The locality's weight is shared by its
//   endpoints in proportion to their own weights (Envoy's locality-weighted LB, folded in).
// - failover (only when the cluster has outlierDetection, as Istio requires, and `distribute` is
//   not set): priority 0 = the proxy's region/zone/subzone, 1 = its region/zone, 2 = its region,
//   then the `failover` target region of the proxy's region, then the rest; used levels are
//   renumbered 0, 1, 2, ... `failoverPriority` (label keys) orders endpoints first by how many of
//   those labels they share with the proxy, in order.
// The proxy's locality is `--locality region/zone/subzone` (Istio's node locality); without it
// every endpoint is priority 0 and only `distribute` rules with `from: "*"` apply.
// `enabled: false` turns all of it off.

import type { LocalityLoadBalancerSetting } from '../resources/types';
import type { Endpoint } from './snapshot';

/** Istio util.LocalityMatch: `pattern` parts equal or `*`, a shorter pattern matches the rest. */
export function localityMatches(locality: string, pattern: string): boolean {
  if (pattern === '*' || pattern === '') return true;
  const l = locality.split('/');
  const p = pattern.split('/');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '*') return true;
    if (l[i] !== p[i]) return false;
  }
  return true;
}

/** Weight scale: endpoint weights are integers >= 1; shares of a locality weight keep 3 decimals. */
const SCALE = 1000;

function distribute(endpoints: readonly Endpoint[], to: Readonly<Record<string, number>>): Endpoint[] {
  const localities = [...new Set(endpoints.map((e) => e.locality))];
  const weightOf = new Map<string, number>();
  for (const [pattern, w] of Object.entries(to)) {
    const matching = localities.filter((l) => localityMatches(l, pattern));
    for (const l of matching) weightOf.set(l, (weightOf.get(l) ?? 0) + w / matching.length);
  }
  const sumIn = new Map<string, number>();
  for (const e of endpoints) sumIn.set(e.locality, (sumIn.get(e.locality) ?? 0) + e.weight);
  const out: Endpoint[] = [];
  for (const e of endpoints) {
    const lw = weightOf.get(e.locality) ?? 0;
    if (lw <= 0) continue;
    out.push({ ...e, weight: Math.max(1, Math.round((SCALE * lw * e.weight) / sumIn.get(e.locality)!)) });
  }
  return out;
}

function failoverPriorities(endpoints: readonly Endpoint[], proxy: string, s: LocalityLoadBalancerSetting, proxyLabels: Readonly<Record<string, string>>): Endpoint[] {
  const [region = '', zone = '', subzone = ''] = proxy.split('/');
  const target = (s.failover ?? []).find((f) => f.from === region)?.to;
  const keys = s.failoverPriority ?? [];
  const rank = (e: Endpoint): number => {
    let labelRank = 0;
    if (keys.length > 0) {
      // how many leading failoverPriority labels it shares with the proxy: more = earlier
      let shared = 0;
      for (const k of keys) {
        const [key, value] = k.includes('=') ? k.split('=', 2) as [string, string] : [k, proxyLabels[k]];
        if (value !== undefined && e.labels[key] === value) shared++;
        else break;
      }
      labelRank = keys.length - shared;
    }
    const [r = '', z = '', sz = ''] = e.locality.split('/');
    let loc: number;
    if (proxy === '') loc = 0;
    else if (r === region && z === zone && sz === subzone) loc = 0;
    else if (r === region && z === zone) loc = 1;
    else if (r === region) loc = 2;
    else if (target !== undefined && r === target) loc = 3;
    else loc = 4;
    return labelRank * 5 + loc;
  };
  const ranks = endpoints.map(rank);
  const used = [...new Set(ranks)].sort((a, b) => a - b);
  return endpoints.map((e, i) => ({ ...e, priority: used.indexOf(ranks[i]!) }));
}

export function applyLocalityLb(
  endpoints: readonly Endpoint[], s: LocalityLoadBalancerSetting | undefined, proxyLocality: string,
  proxyLabels: Readonly<Record<string, string>>, hasOutlierDetection: boolean,
): readonly Endpoint[] {
  if (s === undefined || s.enabled === false || endpoints.length === 0) return endpoints;
  const rule = (s.distribute ?? []).find((d) => localityMatches(proxyLocality, d.from ?? '*'));
  if (rule !== undefined && rule.to !== undefined) return distribute(endpoints, rule.to);
  if (!hasOutlierDetection) return endpoints;
  return failoverPriorities(endpoints, proxyLocality, s, proxyLabels);
}
