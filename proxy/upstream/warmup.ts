// Envoy's slow start (DestinationRule `loadBalancer.warmup`, ROUND_ROBIN and LEAST_REQUEST): a
// host that joined a running cluster (a DNS answer or a config change added it) takes a growing
// share of the load during the warmup window instead of its full weight at once:
//   factor = max(minimumPercent / 100, (time since it joined / duration) ^ (1 / aggression))
// and its load-balancing weight is its weight x factor. Hosts the cluster started with are not in
// slow start (Envoy: they were not "newly added"); a host that was there in the previous config
// generation keeps the time it joined. upstream_cx... are unchanged; only the LB weight moves.

import type { WarmupConfig } from '../../config/compile/snapshot';
import type { UpstreamHost } from './host';

/** Set every host's lbWeight for `now`; returns whether some host is still warming. */
export function applyWarmup(w: WarmupConfig, hosts: readonly UpstreamHost[], now: number): boolean {
  let warming = false;
  for (const h of hosts) {
    const age = now - h.addedAt;
    if (age >= w.durationMs) {
      h.lbWeight = h.weight;
      continue;
    }
    warming = true;
    const timeFactor = Math.max(age, 1) / w.durationMs;
    const factor = Math.max(w.minWeightPercent / 100, Math.pow(timeFactor, 1 / Math.max(w.aggression, 1e-9)));
    h.lbWeight = h.weight * factor;
  }
  return warming;
}
