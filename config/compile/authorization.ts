// AuthorizationPolicy for this proxy: which policies apply (Istio: a policy in the root namespace
// `istio-system` applies to every workload, one in the proxy's namespace to the proxy; either way a
// `selector.matchLabels` must be a subset of the proxy's labels), compiled for matching, and the
// evaluation in Istio's order (security/v1beta1 authorization.proto, "Authorization Policy"):
//
// 1. CUSTOM policies first. sluice has no external authorizer: a request a CUSTOM policy matches is
//    denied as Envoy's ext_authz denies when its server cannot be asked (failure_mode_allow false):
//    403, flag UAEX.
// 2. Any DENY policy that matches: denied (403 `RBAC: access denied`, flag RBAC).
// 3. No ALLOW policy applies: allowed. Some ALLOW policy applies: allowed only if one matches.
// AUDIT policies decide nothing; a match is marked for the audit log.
//
// A rule matches when every one of its `from`, `to` and `when` matches (each a list: any entry
// matches). A field sluice cannot evaluate (JWT request principals, remoteIpBlocks, when keys
// other than connection.sni) makes an ALLOW rule never match and is left out of a DENY rule, so
// the policy can only be stricter than written, never looser (Istio does the same for HTTP-only
// fields of a policy on a TCP workload). Strings match as Istio's: exact, `prefix*`, `*suffix`, `*`.

import type { AuthorizationPolicy, AuthzRule, Resources } from '../resources/types';
import { cidrContains, parseCidr } from './cidr';
import { labelsSubsetOf } from './hosts';
import type { CompiledPolicy, CompiledRule, Constraint } from './snapshot';

/** Istio's default root namespace (meshConfig.rootNamespace). */
export const ROOT_NAMESPACE = 'istio-system';

/** What is known about a request or connection when it is checked. */
export interface AuthzRequest {
  /** Verified peer identity (SPIFFE id without `spiffe://`, as Istio's principals are written), or null. */
  readonly principal: string | null;
  readonly sourceIp: string;
  /** Host/authority without port for HTTP; the SNI for TLS; null when neither. */
  readonly host: string | null;
  readonly sni: string | null;
  readonly port: number;
  readonly method: string | null;
  readonly path: string | null;
}

export type AuthzVerdict =
  | { readonly allowed: true; readonly audit: string | null; readonly policy: string | null }
  | { readonly allowed: false; readonly custom: boolean; readonly policy: string };

function constraint<T>(values: readonly string[] | undefined, notValues: readonly string[] | undefined, map: (s: string) => T | null): Constraint<T> {
  const conv = (l: readonly string[] | undefined): readonly T[] | null => (l === undefined || l.length === 0 ? null : l.map(map).filter((v): v is T => v !== null));
  return { values: conv(values), notValues: conv(notValues) };
}

const same = (s: string): string => s;
const lower = (s: string): string => s.toLowerCase();

function compileRule(rule: AuthzRule): CompiledRule {
  const from = rule.from === undefined || rule.from.length === 0 ? null : rule.from.map((f) => {
    const s = f.source ?? {};
    return {
      principals: constraint(s.principals, s.notPrincipals, same),
      namespaces: constraint(s.namespaces, s.notNamespaces, same),
      ipBlocks: constraint(s.ipBlocks, s.notIpBlocks, parseCidr),
      unsupported: [s.requestPrincipals, s.notRequestPrincipals, s.remoteIpBlocks, s.notRemoteIpBlocks].some((l) => l !== undefined && l.length > 0),
    };
  });
  const to = rule.to === undefined || rule.to.length === 0 ? null : rule.to.map((t) => {
    const o = t.operation ?? {};
    return {
      hosts: constraint(o.hosts, o.notHosts, lower),
      ports: constraint(o.ports, o.notPorts, same),
      methods: constraint(o.methods, o.notMethods, same),
      paths: constraint(o.paths, o.notPaths, same),
    };
  });
  const when = rule.when ?? [];
  const sni = when.filter((c) => c.key === 'connection.sni').map((c) => constraint(c.values, c.notValues, lower));
  return { from, to, sni, unsupported: when.some((c) => c.key !== 'connection.sni') };
}

/** Does `p` apply to a proxy in `namespace` with `labels`? */
export function policyApplies(p: AuthorizationPolicy, namespace: string, labels: Readonly<Record<string, string>>): boolean {
  if (p.metadata.namespace !== ROOT_NAMESPACE && p.metadata.namespace !== namespace) return false;
  return labelsSubsetOf(p.spec.selector?.matchLabels, labels);
}

export function compileAuthorization(resources: Resources, namespace: string, labels: Readonly<Record<string, string>>): CompiledPolicy[] {
  return (resources.authorizationPolicies ?? [])
    .filter((p) => policyApplies(p, namespace, labels))
    .map((p) => ({
      name: p.metadata.name,
      namespace: p.metadata.namespace,
      action: p.spec.action ?? 'ALLOW',
      // Istio: an ALLOW policy without rules allows nothing; a DENY/AUDIT one matches nothing.
      rules: (p.spec.rules ?? []).map(compileRule),
    }));
}

const SPIFFE = 'spiffe://';

/** Istio writes principals without the scheme: `cluster.local/ns/default/sa/billing`. */
export function principalOf(peerUriSan: string | null): string | null {
  if (peerUriSan === null) return null;
  return peerUriSan.startsWith(SPIFFE) ? peerUriSan.slice(SPIFFE.length) : peerUriSan;
}

/** Istio's string match: `*`, `prefix*`, `*suffix`, or exact. */
export function istioStringMatch(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('*')) return value.startsWith(pattern.slice(0, -1));
  if (pattern.startsWith('*')) return value.endsWith(pattern.slice(1));
  return pattern === value;
}

function check<T>(c: Constraint<T>, value: string | null, test: (pattern: T, value: string) => boolean): boolean {
  if (c.values !== null && (value === null || !c.values.some((p) => test(p, value)))) return false;
  if (c.notValues !== null && value !== null && c.notValues.some((p) => test(p, value))) return false;
  return true;
}

/** `cluster.local/ns/<ns>/sa/<sa>` -> `<ns>` (Istio: source.namespace comes from the peer identity). */
function namespaceOf(principal: string | null): string | null {
  if (principal === null) return null;
  const m = /\/ns\/([^/]+)\//.exec(principal);
  return m === null ? null : m[1]!;
}

function ruleMatches(rule: CompiledRule, r: AuthzRequest, forAllow: boolean): boolean {
  if (forAllow && rule.unsupported) return false;
  if (rule.from !== null && !rule.from.some((s) => (!forAllow || !s.unsupported)
    && check(s.principals, r.principal, istioStringMatch)
    && check(s.namespaces, namespaceOf(r.principal), istioStringMatch)
    && check(s.ipBlocks, r.sourceIp, (c, ip) => cidrContains(c, ip)))) return false;
  const host = r.host === null ? null : r.host.toLowerCase();
  // A TCP connection has no method or path (Istio: HTTP-only fields on TCP make an ALLOW rule
  // match nothing and are dropped from a DENY rule).
  const tcp = r.method === null;
  if (rule.to !== null && !rule.to.some((o) => check(o.hosts, host, istioStringMatch)
    && check(o.ports, String(r.port), (p, v) => p === v)
    && (tcp ? !forAllow || (o.methods.values === null && o.methods.notValues === null) : check(o.methods, r.method, (p, v) => p === v))
    && (tcp ? !forAllow || (o.paths.values === null && o.paths.notValues === null) : check(o.paths, r.path === null ? null : r.path.split('?')[0]!, istioStringMatch)))) return false;
  const sni = r.sni === null ? null : r.sni.toLowerCase();
  return rule.sni.every((c) => check(c, sni, istioStringMatch));
}

function matchingRule(p: CompiledPolicy, r: AuthzRequest): number {
  const forAllow = p.action === 'ALLOW';
  return p.rules.findIndex((rule) => ruleMatches(rule, r, forAllow));
}

/** Envoy's RBAC policy id as Istio writes it: `ns[default]-policy[name]-rule[0]`. */
function policyId(p: CompiledPolicy, rule: number): string {
  return `ns[${p.namespace}]-policy[${p.name}]-rule[${rule}]`;
}

/** Istio's order: CUSTOM, DENY, ALLOW (file comment); null = no policy applies to this proxy. */
export function evaluateAuthz(policies: readonly CompiledPolicy[], r: AuthzRequest): AuthzVerdict | null {
  if (policies.length === 0) return null;
  for (const p of policies) {
    if (p.action !== 'CUSTOM') continue;
    const i = matchingRule(p, r);
    if (i >= 0) return { allowed: false, custom: true, policy: policyId(p, i) };
  }
  for (const p of policies) {
    if (p.action !== 'DENY') continue;
    const i = matchingRule(p, r);
    if (i >= 0) return { allowed: false, custom: false, policy: policyId(p, i) };
  }
  let audit: string | null = null;
  for (const p of policies) {
    if (p.action !== 'AUDIT' || audit !== null) continue;
    const i = matchingRule(p, r);
    if (i >= 0) audit = policyId(p, i);
  }
  const allows = policies.filter((p) => p.action === 'ALLOW');
  if (allows.length === 0) return { allowed: true, audit, policy: null };
  for (const p of allows) {
    const i = matchingRule(p, r);
    if (i >= 0) return { allowed: true, audit, policy: policyId(p, i) };
  }
  return { allowed: false, custom: false, policy: 'none' };
}
