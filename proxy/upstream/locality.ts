// Envoy's priority levels (source/common/upstream/load_balancer_impl.cc): endpoints carry the
// failover priority config/compile/locality.ts gave them for this proxy. Each priority takes
// load in proportion to its healthy share times the overprovisioning factor 1.4, capped at what is
// left: with all hosts of priority 0 healthy it takes everything; as they are ejected (outlier
// detection) its share falls and the next priority gets the rest. When no priority is fully
// covered the loads are scaled up to 100%. `exclude` (retryRemoteLocalities: Envoy's
// previous_priorities) leaves out priorities already tried while another has healthy hosts.

import type { UpstreamHost } from './host';

const OVERPROVISIONING = 1.4;

/** Hosts grouped by priority (index = priority), built once per host set; null when all are priority 0. */
export function groupByPriority(hosts: readonly UpstreamHost[]): UpstreamHost[][] | null {
  let max = 0;
  for (const h of hosts) if (h.priority > max) max = h.priority;
  if (max === 0) return null;
  const groups: UpstreamHost[][] = Array.from({ length: max + 1 }, () => []);
  for (const h of hosts) groups[h.priority]!.push(h);
  return groups;
}

/**
 * The healthy hosts of the priority this pick goes to; `usable(h)` says whether a host may take
 * traffic. null when no priority has any.
 */
export function pickPriority(groups: readonly UpstreamHost[][], usable: (h: UpstreamHost) => boolean, exclude: ReadonlySet<number> | null, random: number): readonly UpstreamHost[] | null {
  const healthy: UpstreamHost[][] = groups.map((g) => g.filter(usable));
  let candidates = healthy.map((_, i) => i).filter((i) => healthy[i]!.length > 0);
  if (candidates.length === 0) return null;
  if (exclude !== null && exclude.size > 0) {
    const rest = candidates.filter((i) => !exclude.has(i));
    if (rest.length > 0) candidates = rest;
  }
  const loads: number[] = [];
  let left = 100;
  for (const i of candidates) {
    const share = Math.min(left, (100 * OVERPROVISIONING * healthy[i]!.length) / groups[i]!.length);
    loads.push(share);
    left -= share;
  }
  const total = 100 - left;
  let target = random * total;
  for (let k = 0; k < candidates.length; k++) {
    target -= loads[k]!;
    if (target < 0) return healthy[candidates[k]!]!;
  }
  return healthy[candidates[candidates.length - 1]!]!;
}
