// A live cluster: the compiled Cluster config plus what the data plane keeps for it — resolved
// hosts, the load balancer, the TLS origination context, HTTP connection pools per host — and its
// Envoy stats (shared with earlier generations of the same cluster name, so counters survive reloads).

import type net from 'node:net';
import { ISTIO_MAX_UINT32, type Cluster } from '../../config/compile/snapshot';
import { ProxyError, ProxyErrorCode } from '../errors';
import type { ClusterStats } from '../observe/stats';
import type { OriginalDestination } from '../transport/original-dst';
import { buildTlsOrigination } from '../tls/origination';
import { connectUpstream, type ConnectCallback, type ConnectOptions, type TlsOrigination } from './connect';
import { dnsConfig, resolveName } from './dns';
import { connectHandle, type HandleConnectCallback } from './handle-connect';
import { UpstreamHost } from './host';
import { createLoadBalancer, type LoadBalancer, type PickContext } from './lb';
import { OutlierDetector } from './outlier';
import { groupByPriority, pickPriority } from './locality';
import { applyWarmup } from './warmup';
import { performance } from 'node:perf_hooks';
import type { StatsStore } from '../observe/stats';

export type { OriginalDestination } from '../transport/original-dst';

export class UpstreamCluster {
  readonly config: Cluster;
  readonly name: string;
  readonly stats: ClusterStats;
  /** Resolved, usable hosts. Replaced wholesale on re-resolution (never mutated in place). */
  hosts: readonly UpstreamHost[] = [];
  /** Why there are no hosts (DNS error text, empty subset); null when hosts exist. */
  noHostsReason: string | null;
  private readonly lb: LoadBalancer;
  private readonly tlsOrigination: TlsOrigination | null;
  /** Callbacks for close(): the HTTP pools (proxy/l7/h1-upstream.ts) drop their idle connections. */
  private readonly closeHooks: (() => void)[] = [];
  /** ORIGINAL_DST hosts, created per destination and kept (bounded) so /clusters can show them. */
  private readonly originalDstHosts = new Map<string, UpstreamHost>();
  private refreshTimer: NodeJS.Timeout | null = null;
  /** DestinationRule outlierDetection; null = every host always in */
  readonly outlier: OutlierDetector | null;
  /** hosts by locality priority; null = one priority (the common case) */
  private priorities: UpstreamHost[][] | null = null;
  /** the generation this one replaced (a reload): its hosts keep the time they joined (warmup) */
  private previous: UpstreamCluster | null;
  private hostsEverSet = false;
  /** performance.now() until which some host is in slow start */
  private warmingUntil = -Infinity;
  private readonly onRefresh = (): void => this.resolveOnce(null);
  /** Per endpoint, the hosts of its last successful resolution. */
  private readonly lastResolved: UpstreamHost[][] = [];
  /** Delay of the scheduled re-resolution (ms), for /clusters, explain and tests; null = none. */
  nextRefreshMs: number | null = null;
  private closed = false;

  constructor(config: Cluster, stats: ClusterStats, store: StatsStore | null = null, previous: UpstreamCluster | null = null) {
    this.config = config;
    this.previous = previous;
    this.name = config.name;
    this.stats = stats;
    const od = config.outlierDetection ?? null;
    this.outlier = od !== null && store !== null && config.type !== 'ORIGINAL_DST' ? new OutlierDetector(od, store, config.name, stats) : null;
    this.lb = createLoadBalancer(config.lb);
    this.tlsOrigination = config.tls === null ? null : buildTlsOrigination(config);
    this.noHostsReason = config.emptyReason;
  }

  /** Resolve endpoints; resolves (never rejects) once the first resolution finished. */
  start(): Promise<void> {
    const c = this.config;
    if (c.type === 'ORIGINAL_DST') return Promise.resolve();
    if (c.type === 'STATIC' || c.type === 'EDS') {
      this.setHosts(c.endpoints.map((e) => new UpstreamHost(e.address, e.port, '', e)), null);
      return Promise.resolve();
    }
    this.noHostsReason = 'DNS resolution of ' + c.endpoints.map((e) => e.address).join(', ') + ' in progress';
    return new Promise((resolve) => {
      this.resolveOnce(resolve);
    });
  }

  private resolveOnce(done: (() => void) | null): void {
    const c = this.config;
    const endpoints = c.endpoints;
    if (endpoints.length === 0) {
      this.setHosts([], c.emptyReason ?? 'no endpoints');
      if (done) done();
      return;
    }
    const results: UpstreamHost[][] = new Array(endpoints.length);
    const errors: string[] = [];
    let pending = endpoints.length;
    let ttlMs = Infinity;
    endpoints.forEach((e, i) => {
      resolveName(e.address, (r) => {
        if (r.error) {
          errors.push(`DNS resolution of ${e.address} failed: ${r.error.code ?? r.error.message}`);
          // Envoy keeps the last good hosts of a name whose re-resolution fails.
          results[i] = this.lastResolved[i] ?? [];
        } else {
          // LOGICAL_DNS uses only the first address (Envoy); STRICT_DNS all of them.
          const addrs = c.type === 'LOGICAL_DNS' ? r.addresses.slice(0, 1) : r.addresses;
          results[i] = addrs.map((a) => new UpstreamHost(a, e.port, e.address, e));
          this.lastResolved[i] = results[i]!;
        }
        if (r.ttlMs !== null && r.ttlMs < ttlMs) ttlMs = r.ttlMs;
        if (--pending === 0) {
          const hosts = results.flat();
          this.setHosts(hosts, hosts.length === 0 ? errors.join('; ') || 'DNS returned no addresses' : null);
          this.scheduleRefresh(ttlMs);
          if (done) done();
        }
      });
    });
  }

  /**
   * Next re-resolution: at the shortest record TTL when the resolver knows it (Istio sets
   * respect_dns_ttl), bounded below by the min refresh; else the cluster's dnsRefreshMs.
   */
  private scheduleRefresh(ttlMs: number): void {
    const c = this.config;
    if (this.closed) return;
    const delay = Number.isFinite(ttlMs) ? Math.max(ttlMs, dnsConfig().minRefreshMs) : c.dnsRefreshMs;
    this.nextRefreshMs = delay;
    if (delay <= 0) return;
    this.refreshTimer = setTimeout(this.onRefresh, delay);
    this.refreshTimer.unref();
  }

  private setHosts(hosts: UpstreamHost[], reason: string | null): void {
    // Keep host objects (and their counters) for addresses that did not change.
    const old = new Map(this.hosts.map((h) => [h.key, h]));
    const merged = hosts.map((h) => old.get(h.key) ?? h);
    const w = this.config.warmup ?? null;
    if (w !== null) {
      // Slow start for hosts that join a running cluster (warmup.ts); a reload's new generation
      // keeps the join time of hosts the previous one had.
      const now = performance.now();
      const before = this.previous === null ? null : new Map(this.previous.hosts.map((h) => [h.key, h]));
      for (const h of merged) {
        if (old.has(h.key)) continue;
        const prev = before?.get(h.key);
        if (prev !== undefined) h.addedAt = prev.addedAt;
        else if (this.hostsEverSet || this.previous !== null) h.addedAt = now;
        if (h.addedAt + w.durationMs > this.warmingUntil) this.warmingUntil = h.addedAt + w.durationMs;
      }
    }
    this.hostsEverSet = true;
    // Read once: keeping it would chain every old generation to its successor.
    this.previous = null;
    this.priorities = groupByPriority(merged);
    const changed = merged.length !== this.hosts.length || merged.some((h, i) => h !== this.hosts[i]);
    this.hosts = merged;
    this.noHostsReason = reason;
    this.stats.membership_total.set(merged.length);
    this.stats.membership_healthy.set(merged.length);
    if (this.outlier !== null) this.outlier.setHosts(merged);
    if (changed) this.stats.membership_change.inc();
  }

  /** Choose a host for one connection/request; null = no healthy upstream (UH). */
  /** `excludePriorities`: locality priorities a retry should avoid (retryRemoteLocalities). */
  pick(ctx: PickContext, originalDst: OriginalDestination | null, excludePriorities: ReadonlySet<number> | null = null): UpstreamHost | null {
    // lb PASSTHROUGH makes any cluster an original-destination one (Istio: ORIGINAL_DST + CLUSTER_PROVIDED).
    if (this.config.type === 'ORIGINAL_DST' || this.config.lb.kind === 'PASSTHROUGH') {
      if (originalDst === null) return null;
      // InboundPassthroughClusterIpv4: the app on loopback at the port the client asked for.
      const address = this.config.originalDstOnLoopback === true ? '127.0.0.1' : originalDst.address;
      const key = address + ':' + originalDst.port;
      let h = this.originalDstHosts.get(key);
      if (h === undefined) {
        if (this.originalDstHosts.size > 10_000) this.originalDstHosts.clear();
        h = new UpstreamHost(address, originalDst.port, '', null);
        this.originalDstHosts.set(key, h);
      }
      return h;
    }
    let hosts = this.hosts;
    if (hosts.length === 0) return null;
    const od = this.outlier;
    const filter = od !== null && od.ejectedCount > 0 && !od.panic();
    if (this.priorities !== null) {
      const chosen = pickPriority(this.priorities, filter ? isHealthy : always, excludePriorities, Math.random());
      if (chosen === null) return null;
      hosts = chosen;
    } else if (filter) {
      hosts = hosts.filter(isHealthy);
      if (hosts.length === 0) return null;
    }
    if (this.warmingUntil > -Infinity) {
      const kind = this.config.lb.kind;
      if ((kind === 'ROUND_ROBIN' || kind === 'LEAST_REQUEST') && !applyWarmup(this.config.warmup!, this.hosts, performance.now())) this.warmingUntil = -Infinity;
    }
    return this.lb.pick(hosts, ctx);
  }

  /**
   * Connection circuit breaker (connectionPool.tcp.maxConnections): Envoy counts every open
   * upstream connection of the cluster, TCP-proxied and pooled HTTP alike; one more is refused
   * with upstream_cx_overflow (flag UO). upstream_cx_active is exactly that count (it includes a
   * previous generation's connections still draining after a reload, which Envoy would not).
   */
  overflowError(): ProxyError | null {
    const max = this.config.circuitBreakers.maxConnections;
    if (max >= ISTIO_MAX_UINT32 || this.stats.upstream_cx_active.value < max) return null;
    this.stats.upstream_cx_overflow.inc();
    return new ProxyError(ProxyErrorCode.UPSTREAM_OVERFLOW, `${this.name}: maxConnections ${max} reached`);
  }

  /** The cluster's connections speak TLS (DestinationRule tls mode other than DISABLE). */
  get originatesTls(): boolean {
    return this.tlsOrigination !== null;
  }

  /**
   * Open a raw (or TLS-originated) connection. `onread`: read a plain TCP connection into the
   * caller's buffer (proxy/l4/upstream-reader.ts); only when !originatesTls. `checkLimit` false:
   * the caller already judged maxConnections (an HTTP pool with no connection opens one anyway).
   */
  connect(host: UpstreamHost, sni: string | null, cb: ConnectCallback, onread: net.OnReadOpts | null = null, checkLimit = true): void {
    const overflow = checkLimit ? this.overflowError() : null;
    if (overflow !== null) {
      cb(overflow, null);
      return;
    }
    connectUpstream(this.stats, host, this.connectOptions(sni), cb, onread);
  }

  /**
   * Open a plain-TCP connection on a bare handle (the TCP proxy's fast path; only when
   * !originatesTls and tcpHandles() is available). Same breaker and accounting as connect().
   */
  connectHandle(host: UpstreamHost, cb: HandleConnectCallback): void {
    const overflow = this.overflowError();
    if (overflow !== null) {
      process.nextTick(cb, overflow, null);
      return;
    }
    connectHandle(this.stats, host, this.connectOptions(null), cb);
  }

  private connectOptions(sni: string | null): ConnectOptions {
    const c = this.config;
    const t = c.tls;
    return {
      connectTimeoutMs: c.connectTimeoutMs,
      tls: this.tlsOrigination,
      sni: t === null ? null : t.sni ?? (t.autoSni ? sni : null) ?? sni,
      keepalive: c.tcpKeepalive,
      localAddress: c.upstreamBindAddress ?? null,
    };
  }

  /** Run `fn` when this cluster generation is closed (a reload removed or replaced it). */
  whenClosed(fn: () => void): void {
    if (this.closed) fn();
    else this.closeHooks.push(fn);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.outlier?.close();
    for (const fn of this.closeHooks.splice(0)) fn();
  }
}

function isHealthy(h: UpstreamHost): boolean {
  return h.healthy;
}

function always(): boolean {
  return true;
}
