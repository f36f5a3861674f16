// The one table of fields sluice reads, keeps and validates but does not act on: each use gets a
// CFG_WARN_NOT_ACTED_ON warning that names the trap (the field will silently do nothing). When a
// field starts to act, delete its row; README.md ("Fields the data plane does not act on") lists
// the same rows, and test/unit/config/resources/not-acted-on.test.ts keeps the two in step.
//
// A pattern is a path of Istio's (camelCase) field names: `*` is one field or list index, `**`
// any number of them. Gateway `credentialName` is not here: the gateway compiler already says that
// such a server has no certificate (config/compile/gateway.ts), once.

import { ConfigErrorCode } from '../errors';
import type { ConfigMessage } from '../compile/snapshot';
import { Reporter, type Locator } from './schema';
import type { Kind, Resource, Resources } from './types';

export interface NotActedOn {
  readonly kind: Kind;
  /** From `spec`, e.g. `spec.**.tunnel`. */
  readonly pattern: string;
  /** Why nothing happens, and what to do instead when there is something. */
  readonly why: string;
}

export const NOT_ACTED_ON: readonly NotActedOn[] = [
  { kind: 'DestinationRule', pattern: 'spec.**.tunnel', why: 'sluice does not tunnel upstream connections through HTTP CONNECT or POST' },
  { kind: 'DestinationRule', pattern: 'spec.**.proxyProtocol', why: 'sluice writes no PROXY-protocol header toward upstreams' },
  { kind: 'DestinationRule', pattern: 'spec.**.tls.credentialName', why: 'Kubernetes secrets are not read: set clientCertificate, privateKey and caCertificates (file paths)' },
  { kind: 'DestinationRule', pattern: 'spec.**.connectionPool.tcp.maxConnectionDuration', why: 'upstream connections are not closed after a maximum age' },
  { kind: 'DestinationRule', pattern: 'spec.**.connectionPool.http.idleTimeout', why: 'pooled HTTP/1.1 connections idle out after 4 s whatever this says' },
  { kind: 'ServiceEntry', pattern: 'spec.workloadSelector', why: 'sluice discovers no workloads, so the entry has no endpoints from it' },
  { kind: 'AuthorizationPolicy', pattern: 'spec.**.requestPrincipals', why: 'sluice validates no JWTs: an ALLOW rule using it never matches, a DENY rule is applied without it' },
  { kind: 'AuthorizationPolicy', pattern: 'spec.**.notRequestPrincipals', why: 'sluice validates no JWTs: an ALLOW rule using it never matches, a DENY rule is applied without it' },
  { kind: 'AuthorizationPolicy', pattern: 'spec.**.remoteIpBlocks', why: 'X-Forwarded-For is not trusted for policy: an ALLOW rule using it never matches, a DENY rule is applied without it' },
  { kind: 'AuthorizationPolicy', pattern: 'spec.**.notRemoteIpBlocks', why: 'X-Forwarded-For is not trusted for policy: an ALLOW rule using it never matches, a DENY rule is applied without it' },
  { kind: 'AuthorizationPolicy', pattern: 'spec.targetRef', why: 'policies attach by selector and namespace only; the policy applies as if it had no targetRef' },
  { kind: 'AuthorizationPolicy', pattern: 'spec.targetRefs', why: 'policies attach by selector and namespace only; the policy applies as if it had no targetRefs' },
  { kind: 'AuthorizationPolicy', pattern: 'spec.provider', why: 'sluice has no external authorizer: what a CUSTOM policy matches is denied (403, flag UAEX)' },
];

/** Calls `fn(holder, field)` for every present value of `obj` whose path matches `segments`. */
function walk(obj: unknown, segments: readonly string[], fn: (holder: object, field: string) => void): void {
  if (segments.length === 0 || obj === null || typeof obj !== 'object') return;
  const [head, ...rest] = segments as [string, ...string[]];
  const entries = Object.entries(obj as Record<string, unknown>).filter(([, v]) => v !== undefined && v !== null);
  if (head === '**') {
    walk(obj, rest, fn);
    for (const [, v] of entries) walk(v, segments, fn);
    return;
  }
  for (const [k, v] of entries) {
    // Durations are normalised to `<name>Ms` (schema.ts); the pattern and the message use Istio's name.
    if (head !== '*' && head !== k && head + 'Ms' !== k) continue;
    if (rest.length === 0) fn(obj as object, head === '*' ? k : head);
    else walk(v, rest, fn);
  }
}

export function checkNotActedOn(res: Resources, loc: Locator, out: ConfigMessage[]): void {
  const all: Resource[] = [...res.serviceEntries, ...res.gateways, ...res.virtualServices, ...res.destinationRules, ...(res.authorizationPolicies ?? [])];
  for (const r of all) {
    let rep: Reporter | null = null;
    for (const row of NOT_ACTED_ON) {
      if (row.kind !== r.kind) continue;
      const seen = new Set<string>();
      walk({ spec: r.spec }, row.pattern.split('.'), (holder, field) => {
        const at = loc.at(holder, field);
        if (seen.has(at)) return; // `**` can reach one field along two routes
        seen.add(at);
        rep ??= new Reporter(out, r.origin, `${r.kind}/${r.metadata.name}`);
        rep.warn(ConfigErrorCode.NOT_ACTED_ON, at, `${field} is carried but not acted on: ${row.why}`);
      });
    }
  }
}
