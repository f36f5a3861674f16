// One upstream endpoint as the data plane sees it: a resolved address, its Envoy per-host counters
// (shown by /clusters) and the load-balancer state (active requests for LEAST_REQUEST).

import type { Endpoint } from '../../config/compile/snapshot';

/** What a host reports to its cluster's outlier detection (outlier.ts HostMonitor). */
export interface OutlierMonitor {
  httpStatus(status: number): void;
  localOriginFailure(timeout: boolean): void;
  localOriginSuccess(): void;
}

export class HostCounters {
  cx_active = 0;
  cx_connect_fail = 0;
  cx_total = 0;
  rq_active = 0;
  rq_error = 0;
  rq_success = 0;
  rq_timeout = 0;
  rq_total = 0;
}

export class UpstreamHost {
  /** IP literal */
  readonly address: string;
  readonly port: number;
  /** The DNS name it was resolved from ('' for static IPs): /clusters `hostname`. */
  readonly hostname: string;
  readonly weight: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly locality: string;
  /** `ip:port` (`[v6]:port`), UPSTREAM_HOST in the access log; built once. */
  readonly key: string;
  readonly counters = new HostCounters();
  /** hash of `key`, precomputed for consistent hashing */
  readonly keyHash: number;
  /** false while outlier detection has it ejected (outlier.ts): out of load balancing. */
  healthy = true;
  /** its outlier-detection counters, when the cluster has outlierDetection */
  outlier: OutlierMonitor | null = null;
  /** performance.now() when it joined a running cluster (slow start, warmup.ts); -Infinity = from the start */
  addedAt = -Infinity;
  /** the weight the load balancer uses: `weight`, lowered while warming up (warmup.ts) */
  lbWeight: number;
  /** locality failover priority (upstream/locality.ts) */
  readonly priority: number;
  /** smooth weighted round robin state (lb.ts), only used when weights differ */
  lbCurrentWeight = 0;

  constructor(address: string, port: number, hostname: string, endpoint: Endpoint | null) {
    this.address = address;
    this.port = port;
    this.hostname = hostname;
    // Envoy rejects weight 0; the schema allows it, so treat it as the smallest weight.
    this.weight = Math.max(1, endpoint?.weight ?? 1);
    this.lbWeight = this.weight;
    this.priority = endpoint?.priority ?? 0;
    this.labels = endpoint?.labels ?? {};
    this.locality = endpoint?.locality ?? '';
    this.key = (address.includes(':') ? '[' + address + ']' : address) + ':' + port;
    this.keyHash = hashKey(this.key);
  }
}

/** FNV-1a over the UTF-16 code units: a stable 32-bit hash of the key, no allocation. */
export function hashKey(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
