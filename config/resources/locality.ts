// DestinationRule localityLbSetting rules, as Istio's agent.ValidateLocalityLbSetting: distribute
// and failover exclude each other, distribute weights are 1..100 and add up to 100, failover is
// region to a different region without wildcards, and localities (`region/zone/subzone`, a `*`
// only at the end) neither have empty parts nor overlap.

import { ConfigErrorCode } from '../errors';
import type { Locator, Reporter } from './schema';
import type { LocalityLoadBalancerSetting } from './types';

/** Labels whose priority failover and region failover would contradict (Istio label.LabelTopology*). */
const TOPOLOGY_LABELS = new Set(['topology.kubernetes.io/region', 'topology.kubernetes.io/zone', 'topology.istio.io/subzone']);

export function checkLocalityLb(l: LocalityLoadBalancerSetting, loc: Locator, r: Reporter): void {
  const E = ConfigErrorCode.INVALID_FIELD;
  const distribute = (l.distribute ?? []).filter((d) => d !== null);
  const failover = (l.failover ?? []).filter((f) => f !== null);
  if (distribute.length > 0 && failover.length > 0) {
    r.error(E, loc.at(l), "can not simultaneously specify 'distribute' and 'failover'");
    return;
  }
  if (failover.length > 0) {
    const label = (l.failoverPriority ?? []).find((p) => p !== null && TOPOLOGY_LABELS.has(p));
    if (label !== undefined) {
      r.error(E, loc.at(l, 'failoverPriority'), `can not simultaneously set 'failover' and topology label '${label}' in 'failover_priority'`);
      return;
    }
  }
  for (const d of distribute) {
    let total = 0;
    const to = d.to ?? {};
    for (const [locality, w] of Object.entries(to)) {
      if (w <= 0 || w > 100) {
        r.error(E, loc.at(to, locality), 'locality weight must be in range [1, 100]');
        return;
      }
      total += w;
    }
    if (total !== 100) {
      r.error(E, loc.at(d, 'to'), `total locality weight ${total} != 100`);
      return;
    }
    const bad = localitiesError(Object.keys(to));
    if (bad !== null) r.error(E, loc.at(d, 'to'), bad);
  }
  const fromError = localitiesError(distribute.map((d) => d.from ?? ''));
  if (fromError !== null) r.error(E, loc.at(l, 'distribute'), fromError);
  for (const f of failover) {
    const at = loc.at(f);
    if (f.from === f.to) r.error(E, at, 'locality lb failover settings must specify different regions');
    if ((f.from ?? '').includes('/') || (f.to ?? '').includes('/')) r.error(E, at, 'locality lb failover only specify region');
    if ((f.from ?? '').includes('*') || (f.to ?? '').includes('*')) r.error(E, at, "locality lb failover region should not contain '*' wildcard");
  }
}

/** Istio validateLocalities: the first problem among a list of `region[/zone[/subzone]]` patterns. */
function localitiesError(localities: readonly string[]): string | null {
  // region -> zone -> subzone, with `*` standing for "all of them".
  const tree = new Map<string, Map<string, Set<string>>>();
  for (const locality of localities) {
    const stars = locality.split('*').length - 1;
    if (stars > 1 || (stars === 1 && !locality.endsWith('*'))) return `locality ${locality} wildcard '*' number can not exceed 1 and must be in the end`;
    if (tree.has('*')) return `locality ${locality} overlap with previous specified ones`;
    const parts = locality.split('/', 3);
    if (locality.split('/').length > 3) parts[2] = locality.split('/').slice(2).join('/');
    if (parts.some((p) => p === '')) return `locality ${locality} must not contain empty region/zone/subzone info`;
    const [region, zone, sub] = parts as [string, string | undefined, string | undefined];
    const overlap = `locality ${locality} overlap with previous specified ones`;
    const zones = tree.get(region);
    if (zone === undefined) {
      if (zones !== undefined) return overlap;
      tree.set(region, new Map([['*', new Set(['*'])]]));
    } else if (sub === undefined) {
      if (zones?.has('*') === true || zones?.has(zone) === true) return overlap;
      if (zones === undefined) tree.set(region, new Map([[zone, new Set(['*'])]]));
      else zones.set(zone, new Set(['*']));
    } else {
      if (zones?.has('*') === true) return overlap;
      const subs = zones?.get(zone);
      if (subs?.has('*') === true || subs?.has(sub) === true) return overlap;
      if (zones === undefined) tree.set(region, new Map([[zone, new Set([sub])]]));
      else if (subs === undefined) zones.set(zone, new Set([sub]));
      else subs.add(sub);
    }
  }
  return null;
}
