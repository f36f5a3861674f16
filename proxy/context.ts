// What every connection handler needs from the running proxy, gathered in one object created by the
// runtime: the current snapshot, live clusters, stats, the access-log sink and the process logger.
// Stat bundles for listeners / HTTP / TCP prefixes are created once per name and reused.

import type { Logger } from 'pino';
import type { Role, Snapshot } from '../config/compile/snapshot';
import type { AccessLogSink } from './observe/access-log-record';
import { HttpStats, ListenerStats, TcpStats, type StatsStore } from './observe/stats';
import type { ClusterManager } from './upstream/cluster-manager';
import type { ServerTlsContexts } from './tls/server-contexts';
import { Admission, NO_CONNECTION_LIMITS, type ConnectionLimits } from './listener/admission';

export interface DownstreamTimeouts {
  /** Envoy's request_headers_timeout: a begun request head must be complete within this (ms); 0 = none. */
  readonly requestHeadersMs: number;
}

/**
 * Gateways: 60 s, nginx's client_header_timeout (Envoy leaves it off; its edge guidance sets it).
 * Sidecars: off, as Envoy and Istio leave it.
 */
export function defaultTimeouts(role: Role): DownstreamTimeouts {
  return { requestHeadersMs: role === 'gateway' ? 60_000 : 0 };
}

export class ProxyContext {
  readonly role: Role;
  readonly stats: StatsStore;
  readonly clusters: ClusterManager;
  readonly accessLog: AccessLogSink;
  readonly log: Logger;
  readonly serverTls: ServerTlsContexts;
  /** Connection limits at accept (listener/admission.ts). */
  readonly admission: Admission;
  /** Downstream timeouts (`--request-headers-timeout`); see README "Timeouts and limits". */
  readonly timeouts: DownstreamTimeouts;
  /**
   * `--outbound-policy-mode`: in `report`, an AuthorizationPolicy denial is let through and logged
   * `would_deny` (Envoy's RBAC shadow rules: `rbac.shadow_denied`); REGISTRY_ONLY's report mode is compiled in.
   */
  readonly policyMode: 'enforce' | 'report';
  /** Replaced atomically on reload; connections capture the value they started with. */
  snapshot: Snapshot;
  /**
   * Set when the proxy drains (SIGTERM, proxy/shutdown.ts): listeners still accept, but every
   * HTTP/1.1 response from then on carries `Connection: close`, as Envoy's drain does, so clients
   * move to another replica instead of reusing this one.
   */
  draining = false;
  private readonly listenerStats = new Map<string, ListenerStats>();
  private readonly httpStats = new Map<string, HttpStats>();
  private readonly tcpStats = new Map<string, TcpStats>();

  constructor(init: { role: Role; stats: StatsStore; clusters: ClusterManager; accessLog: AccessLogSink; log: Logger; serverTls: ServerTlsContexts; snapshot: Snapshot; limits?: ConnectionLimits; timeouts?: DownstreamTimeouts; policyMode?: 'enforce' | 'report' }) {
    this.role = init.role;
    this.stats = init.stats;
    this.clusters = init.clusters;
    this.accessLog = init.accessLog;
    this.log = init.log;
    this.serverTls = init.serverTls;
    this.admission = new Admission(init.limits ?? NO_CONNECTION_LIMITS, init.stats, init.log);
    this.timeouts = init.timeouts ?? defaultTimeouts(init.role);
    this.policyMode = init.policyMode ?? 'enforce';
    this.snapshot = init.snapshot;
  }

  listenerStatsFor(name: string): ListenerStats {
    let s = this.listenerStats.get(name);
    if (s === undefined) this.listenerStats.set(name, (s = new ListenerStats(this.stats, name)));
    return s;
  }

  httpStatsFor(prefix: string): HttpStats {
    let s = this.httpStats.get(prefix);
    if (s === undefined) this.httpStats.set(prefix, (s = new HttpStats(this.stats, prefix)));
    return s;
  }

  /** server.total_connections: open downstream connections over all listeners. */
  activeDownstreamConnections(): number {
    let n = 0;
    for (const l of this.listenerStats.values()) n += l.downstream_cx_active.value;
    return n;
  }

  tcpStatsFor(prefix: string): TcpStats {
    let s = this.tcpStats.get(prefix);
    if (s === undefined) this.tcpStats.set(prefix, (s = new TcpStats(this.stats, prefix)));
    return s;
  }
}
