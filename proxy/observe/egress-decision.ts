// The egress policy's verdict on each completed request or connection, and the blocked traffic
// named. Envoy logs a REGISTRY_ONLY refusal as `BlackHoleCluster UH` with no hostname (istio/istio
// #7669, #17759), so nobody can tell which external host an app wanted; and Istio has no dry run
// for turning REGISTRY_ONLY on. Smokescreen's answer is `report` mode with `enforce_would_deny` in
// its audit line. This module is sluice's: one sink in front of the access and audit logs that
//
// - decides: a record an AuthorizationPolicy denied carries its verdict already; otherwise a
//   record that went to the sidecar's REGISTRY_ONLY catch-all (BlackHoleCluster, the `block_all`
//   route, a refused CONNECT) is `deny`, and under `--outbound-policy-mode report` (the snapshot is
//   then compiled ALLOW_ANY, so the same traffic reaches PassthroughCluster / `allow_any`) it is
//   `would_deny`. The verdict and its reason go onto the record for the audit line;
// - counts denials per requested host, bounded: the first `maxHosts` distinct hosts get their own
//   counter, every later one is counted in one `other` bucket, so a scan of random names cannot
//   grow the stats without limit (stats are never removed, so a bucket once given stays).
//
// Requested host: the Host/authority of an HTTP request (or the CONNECT target), else the SNI,
// else the original destination address.

import type { AccessLogRecord, AccessLogSink, PolicyDecision } from './access-log-record';
import { sanitizeStatSegment, type Counter, type StatsStore } from './stats';

export type OutboundPolicyMode = 'enforce' | 'report';

export interface EgressPolicyOptions {
  /** The configured outbound policy is REGISTRY_ONLY (sidecar only: gateways have no catch-all). */
  readonly registryOnly: boolean;
  readonly mode: OutboundPolicyMode;
  /** Hosts with their own denial counter; later ones go to `other`. Default 100. */
  readonly maxHosts?: number;
}

export const DEFAULT_DENIED_HOSTS = 100;
/** The reason REGISTRY_ONLY gives: the destination is in no ServiceEntry. */
export const NOT_IN_REGISTRY = 'not_in_registry';
/** The bucket for hosts past the bound. */
export const OTHER_HOSTS = 'other';

/** Stat names, declared once (STYLE.md rule 15). */
export const EGRESS_POLICY_STATS = {
  deny: 'egress_policy.denied',
  wouldDeny: 'egress_policy.would_deny',
  /** `egress_policy.denied.host.<host>` / `egress_policy.would_deny.host.<host>`, `... .host.other` */
  host: (decision: PolicyDecision, host: string) => `${decision === 'deny' ? 'egress_policy.denied' : 'egress_policy.would_deny'}.host.${sanitizeStatSegment(host)}`,
} as const;

export function hostOfAuthority(authority: string): string {
  if (authority.charCodeAt(0) === 91 /* [ */) return authority.slice(1, authority.indexOf(']'));
  const colon = authority.lastIndexOf(':');
  return colon < 0 ? authority : authority.slice(0, colon);
}

/** What the client asked for: Host/authority, else SNI, else the address it connected to. */
export function requestedHost(r: AccessLogRecord): string | null {
  if (r.authority !== null && r.authority !== '') return hostOfAuthority(r.authority);
  if (r.requestedServerName !== null && r.requestedServerName !== '') return r.requestedServerName;
  return r.downstreamLocalAddress === null ? null : hostOfAuthority(r.downstreamLocalAddress);
}

/** Fill `policyDecision`/`policyReason` of a record nothing decided explicitly (see the file comment). */
export function decide(r: AccessLogRecord, o: EgressPolicyOptions): void {
  if (r.policyDecision !== null || !o.registryOnly) return;
  if (o.mode === 'enforce') {
    if (r.upstreamCluster === 'BlackHoleCluster' || r.routeName === 'block_all' || r.responseCodeDetails === 'connect_host_not_in_registry') {
      r.policyDecision = 'deny';
      r.policyReason = NOT_IN_REGISTRY;
    }
  } else if (r.upstreamCluster === 'PassthroughCluster' || r.routeName === 'allow_any') {
    r.policyDecision = 'would_deny';
    r.policyReason = NOT_IN_REGISTRY;
  }
}

/** Per-host denial counters, bounded (see the file comment). */
export class DeniedHosts {
  private readonly hosts = new Map<string, Counter>();
  private readonly totals: Record<PolicyDecision, Counter>;

  constructor(private readonly stats: StatsStore, private readonly maxHosts = DEFAULT_DENIED_HOSTS) {
    this.totals = { deny: stats.counter(EGRESS_POLICY_STATS.deny), would_deny: stats.counter(EGRESS_POLICY_STATS.wouldDeny) };
  }

  count(decision: PolicyDecision, host: string | null): void {
    this.totals[decision].inc();
    const key = decision + ' ' + (host ?? OTHER_HOSTS);
    let c = this.hosts.get(key);
    if (c === undefined) {
      const bucket = host === null || this.hosts.size >= this.maxHosts ? OTHER_HOSTS : host;
      const otherKey = decision + ' ' + OTHER_HOSTS;
      c = bucket === OTHER_HOSTS ? this.hosts.get(otherKey) : undefined;
      if (c === undefined) {
        c = this.stats.counter(EGRESS_POLICY_STATS.host(decision, bucket), {
          name: 'envoy_egress_policy_host_' + (decision === 'deny' ? 'denied' : 'would_deny'),
          labels: [['host', bucket]],
        });
        this.hosts.set(bucket === OTHER_HOSTS ? otherKey : key, c);
      }
    }
    c.inc();
  }
}

/** `sink` behind the egress decision: every record is decided, denials counted, then logged. */
/** A sink that can be flushed and closed (audit-log.ts ClosableSink, restated to keep imports one-way). */
interface FlushableSink extends AccessLogSink {
  flush(): Promise<void>;
  close(): Promise<void>;
}

export function withEgressPolicy(sink: FlushableSink, o: EgressPolicyOptions, stats: StatsStore): FlushableSink {
  const denied = new DeniedHosts(stats, o.maxHosts);
  const inner: AccessLogSink = sink;
  return {
    // Under REGISTRY_ONLY records are made even with the access log off, so denials are counted.
    enabled: inner.enabled || o.registryOnly,
    log(record: AccessLogRecord): void {
      decide(record, o);
      if (record.policyDecision !== null) denied.count(record.policyDecision, requestedHost(record));
      if (inner.enabled) inner.log(record);
    },
    flush: () => sink.flush(),
    close: () => sink.close(),
  };
}
