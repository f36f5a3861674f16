// Passive health: Envoy's outlier detection (source/common/upstream/outlier_detection_impl.cc) for
// one cluster generation, from DestinationRule `outlierDetection`.
//
// - Each host counts consecutive 5xx answers, consecutive gateway errors (502/503/504) and, with
//   splitExternalLocalOriginErrors, consecutive local-origin failures (connect failures, resets,
//   timeouts). Without the split, a local-origin failure counts as the 5xx Envoy maps it to
//   (connect failure and reset 503, timeout 504). A non-5xx answer resets the HTTP counters.
// - A counter reaching its threshold ejects the host at once (not at the interval), unless
//   ejected hosts would then exceed maxEjectionPercent of the cluster (ejections_overflow).
// - Every `interval` ejected hosts whose time is up return: ejection time = baseEjectionTime x
//   the host's ejection count, at most max_ejection_time (300 s). A host that stays in for a whole
//   baseEjectionTime after returning has its count lowered by one (Envoy's ejection back-off).
// - Ejected hosts are out of load balancing (UpstreamHost.healthy false, `/failed_outlier_check`
//   in /clusters) unless healthy hosts fall below minHealthPercent (Envoy's panic threshold: then
//   all are used; 0, Istio's default, never).
// Stats: `cluster.<name>.outlier_detection.ejections_active`, `ejections_total`,
// `ejections_overflow`, `ejections_enforced_total`, `ejections_{enforced,detected}_consecutive_5xx`,
// `_consecutive_gateway_failure`, `_consecutive_local_origin_failure`.

import { performance } from 'node:perf_hooks';
import type { OutlierConfig } from '../../config/compile/snapshot';
import { sanitizeStatSegment, type ClusterStats, type Counter, type Gauge, type StatsStore } from '../observe/stats';
import type { OutlierMonitor, UpstreamHost } from './host';

type EjectionKind = 'consecutive_5xx' | 'consecutive_gateway_failure' | 'consecutive_local_origin_failure';

class OutlierStats {
  readonly ejections_active: Gauge;
  readonly ejections_total: Counter;
  readonly ejections_overflow: Counter;
  readonly ejections_enforced_total: Counter;
  readonly enforced: Record<EjectionKind, Counter>;
  readonly detected: Record<EjectionKind, Counter>;

  constructor(store: StatsStore, clusterName: string) {
    const p = 'cluster.' + sanitizeStatSegment(clusterName) + '.outlier_detection.';
    this.ejections_active = store.gauge(p + 'ejections_active');
    this.ejections_total = store.counter(p + 'ejections_total');
    this.ejections_overflow = store.counter(p + 'ejections_overflow');
    this.ejections_enforced_total = store.counter(p + 'ejections_enforced_total');
    const kinds: EjectionKind[] = ['consecutive_5xx', 'consecutive_gateway_failure', 'consecutive_local_origin_failure'];
    this.enforced = Object.fromEntries(kinds.map((k) => [k, store.counter(p + 'ejections_enforced_' + k)])) as Record<EjectionKind, Counter>;
    this.detected = Object.fromEntries(kinds.map((k) => [k, store.counter(p + 'ejections_detected_' + k)])) as Record<EjectionKind, Counter>;
  }
}

/** One host's counters and ejection state. */
export class HostMonitor implements OutlierMonitor {
  private readonly detector: OutlierDetector;
  readonly host: UpstreamHost;
  consecutive5xx = 0;
  consecutiveGateway = 0;
  consecutiveLocalOrigin = 0;
  /** times ejected, lowered by the back-off (sets the next ejection's length) */
  ejections = 0;
  ejectedAt = 0;
  returnedAt = 0;

  constructor(detector: OutlierDetector, host: UpstreamHost) {
    this.detector = detector;
    this.host = host;
  }

  /** An upstream HTTP answer with this status. */
  httpStatus(status: number): void {
    const c = this.detector.config;
    if (status >= 500) {
      if (c.consecutive5xx > 0 && ++this.consecutive5xx >= c.consecutive5xx) this.detector.eject(this, 'consecutive_5xx');
      if (status >= 502 && status <= 504 && c.consecutiveGatewayErrors > 0 && ++this.consecutiveGateway >= c.consecutiveGatewayErrors) {
        this.detector.eject(this, 'consecutive_gateway_failure');
      }
      if (status < 502 || status > 504) this.consecutiveGateway = 0;
      return;
    }
    this.consecutive5xx = 0;
    this.consecutiveGateway = 0;
  }

  /** A connect failure, reset or timeout (`timeout`: counted as a 504 without the split, else a 503). */
  localOriginFailure(timeout: boolean): void {
    const c = this.detector.config;
    if (!c.splitLocalOrigin) {
      this.httpStatus(timeout ? 504 : 503);
      return;
    }
    if (c.consecutiveLocalOrigin > 0 && ++this.consecutiveLocalOrigin >= c.consecutiveLocalOrigin) this.detector.eject(this, 'consecutive_local_origin_failure');
  }

  /** A connection was established: ends a run of local-origin failures (split mode only). */
  localOriginSuccess(): void {
    this.consecutiveLocalOrigin = 0;
  }

  resetCounters(): void {
    this.consecutive5xx = 0;
    this.consecutiveGateway = 0;
    this.consecutiveLocalOrigin = 0;
  }
}

export class OutlierDetector {
  readonly config: OutlierConfig;
  private readonly stats: OutlierStats;
  private readonly clusterStats: ClusterStats;
  private monitors: HostMonitor[] = [];
  private readonly timer: NodeJS.Timeout;
  ejectedCount = 0;

  constructor(config: OutlierConfig, store: StatsStore, clusterName: string, clusterStats: ClusterStats) {
    this.config = config;
    this.stats = new OutlierStats(store, clusterName);
    this.clusterStats = clusterStats;
    this.timer = setInterval(onInterval, Math.max(1, config.intervalMs), this);
    this.timer.unref();
  }

  /** The cluster's hosts changed: monitor the new ones (kept hosts keep their monitor and state). */
  setHosts(hosts: readonly UpstreamHost[]): void {
    const next: HostMonitor[] = [];
    for (const h of hosts) {
      let m = h.outlier as HostMonitor | null;
      if (m === null) h.outlier = m = new HostMonitor(this, h);
      next.push(m);
    }
    for (const m of this.monitors) if (!hosts.includes(m.host) && !m.host.healthy) this.ejectedCount--;
    this.monitors = next;
    this.stats.ejections_active.set(this.ejectedCount);
    this.clusterStats.membership_healthy.set(hosts.length - this.ejectedCount);
  }

  eject(m: HostMonitor, kind: EjectionKind): void {
    const host = m.host;
    m.resetCounters();
    if (!host.healthy) return;
    this.stats.detected[kind].inc();
    const n = this.monitors.length;
    // Envoy: eject while (ejected + 1) / hosts stays within maxEjectionPercent.
    if (n === 0 || (100 * (this.ejectedCount + 1)) / n > this.config.maxEjectionPercent) {
      this.stats.ejections_overflow.inc();
      return;
    }
    host.healthy = false;
    m.ejections++;
    m.ejectedAt = performance.now();
    this.ejectedCount++;
    this.stats.ejections_total.inc();
    this.stats.ejections_enforced_total.inc();
    this.stats.enforced[kind].inc();
    this.stats.ejections_active.set(this.ejectedCount);
    this.clusterStats.membership_healthy.set(n - this.ejectedCount);
  }

  /** Every interval: ejected hosts whose time is up return; hosts that stayed in lower their count. */
  tick(now = performance.now()): void {
    const c = this.config;
    const maxFactor = Math.max(1, Math.floor(c.maxEjectionMs / c.baseEjectionMs));
    for (const m of this.monitors) {
      const h = m.host;
      if (!h.healthy) {
        if (now - m.ejectedAt >= c.baseEjectionMs * Math.min(m.ejections, maxFactor)) {
          h.healthy = true;
          m.returnedAt = now;
          m.resetCounters();
          this.ejectedCount--;
        }
      } else if (m.ejections > 0 && now - Math.max(m.returnedAt, m.ejectedAt) >= c.baseEjectionMs) {
        m.ejections--;
        m.returnedAt = now;
      }
    }
    this.stats.ejections_active.set(this.ejectedCount);
    this.clusterStats.membership_healthy.set(this.monitors.length - this.ejectedCount);
  }

  /** In panic (healthy share below minHealthPercent) the load balancer uses every host. */
  panic(): boolean {
    const n = this.monitors.length;
    return n > 0 && this.config.minHealthPercent > 0 && (100 * (n - this.ejectedCount)) / n < this.config.minHealthPercent;
  }

  close(): void {
    clearInterval(this.timer);
  }
}

function onInterval(d: OutlierDetector): void {
  d.tick();
}
