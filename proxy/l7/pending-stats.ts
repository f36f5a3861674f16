// Envoy's pending-request stats of a cluster (`cluster.<name>.upstream_rq_pending_total`,
// `_pending_active`, `_pending_failure_eject`, `upstream_rq_cancelled`), kept
// by the HTTP/1.1 pools (h1-upstream.ts). Created on a cluster's first pooled request rather than
// with ClusterStats, so a config with 60k clusters carries no extra stats for clusters that never
// see HTTP traffic; resolved once per ClusterStats (which outlives reloads), so counters do too.
// `upstream_rq_pending_overflow` is declared by ClusterStats itself.

import { sanitizeStatSegment, type ClusterStats, type Counter, type Gauge, type StatsStore } from '../observe/stats';

export class PendingStats {
  readonly upstream_rq_pending_total: Counter;
  readonly upstream_rq_pending_active: Gauge;
  readonly upstream_rq_pending_failure_eject: Counter;
  readonly upstream_rq_cancelled: Counter;

  constructor(store: StatsStore, clusterName: string) {
    const p = 'cluster.' + sanitizeStatSegment(clusterName) + '.';
    this.upstream_rq_pending_total = store.counter(p + 'upstream_rq_pending_total');
    this.upstream_rq_pending_active = store.gauge(p + 'upstream_rq_pending_active');
    this.upstream_rq_pending_failure_eject = store.counter(p + 'upstream_rq_pending_failure_eject');
    this.upstream_rq_cancelled = store.counter(p + 'upstream_rq_cancelled');
  }
}

const byCluster = new WeakMap<ClusterStats, PendingStats>();

export function pendingStatsFor(store: StatsStore, clusterName: string, stats: ClusterStats): PendingStats {
  let s = byCluster.get(stats);
  if (s === undefined) {
    s = new PendingStats(store, clusterName);
    byCluster.set(stats, s);
  }
  return s;
}
