// Host-name matching with Istio/Envoy wildcard rules: `*` matches everything, `*.example.com`
// matches any name ending in `.example.com` (not `example.com` itself)
// (Istio's gateway.proto `Server.hosts`). HostSets are built at compile time; matching is a Set lookup
// plus a short suffix scan and allocates nothing for lower-case input.

import type { HostSet } from './snapshot';
import { frozenSet } from './freeze';

export function buildHostSet(names: readonly string[]): HostSet {
  const exact: string[] = [];
  const suffixes: string[] = [];
  let any = false;
  for (const raw of names) {
    const n = raw.toLowerCase();
    if (n === '*') any = true;
    else if (n.startsWith('*.')) {
      if (!suffixes.includes(n.slice(1))) suffixes.push(n.slice(1));
    } else if (!exact.includes(n)) exact.push(n);
  }
  // Longest suffix first: the most specific wildcard decides, as Envoy's domain matching does.
  suffixes.sort((a, b) => b.length - a.length);
  return { exact: frozenSet(exact), suffixes, any };
}

function hasUpperCase(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) return true;
  }
  return false;
}

export function hostSetMatches(h: HostSet, name: string): boolean {
  if (h.any) return true;
  if (hasUpperCase(name)) name = name.toLowerCase(); // rare: SNI and Host are usually lower-case
  if (h.exact.has(name)) return true;
  const suffixes = h.suffixes;
  for (let i = 0; i < suffixes.length; i++) {
    const s = suffixes[i]!;
    if (name.length > s.length && name.endsWith(s)) return true;
  }
  return false;
}

/** Does `pattern` (`*`, `*.x` or a name) cover `host` (a name or a narrower wildcard)? */
export function hostCovers(pattern: string, host: string): boolean {
  if (pattern === '*') return true;
  if (pattern === host) return true;
  if (!pattern.startsWith('*.')) return false;
  const suffix = pattern.slice(1);
  return host.length > suffix.length && host.endsWith(suffix);
}

/**
 * Do two host patterns share at least one name? Istio binds a VirtualService to a Gateway server
 * when their hosts overlap in either direction (VS `*` binds server `a.com`, VS `a.x.com` binds
 * server `*.x.com`).
 */
export function hostsOverlap(a: string, b: string): boolean {
  return hostCovers(a, b) || hostCovers(b, a);
}

/** The narrower of two overlapping patterns: the names both accept (Istio `pickMatchingGatewayHosts`). */
export function narrowerHost(a: string, b: string): string {
  return hostCovers(a, b) ? b : a;
}

/** `labels` ⊆ `of` (Istio `labels.Instance.SubsetOf`); absent/empty selects everything. */
export function labelsSubsetOf(labels: Readonly<Record<string, string>> | undefined, of: Readonly<Record<string, string>>): boolean {
  if (labels === undefined) return true;
  for (const k of Object.keys(labels)) {
    if (of[k] !== labels[k]) return false;
  }
  return true;
}
