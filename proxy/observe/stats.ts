// Envoy-named statistics. The hot path only ever does `counter.value++` on objects it resolved
// when the cluster / listener was created: no string building, no Map lookups
// per request, connection or chunk. Rendering (/stats text and JSON, /stats/prometheus) reads the
// store; see render-stats.ts.
//
// Names are Envoy's, in the pre-1.23 shape without the `;` delimiter ("Names and
// formats"): `cluster.outbound|80||edition.cnn.com.upstream_cx_total`. Any `:` in a name segment
// is replaced by `_`, as Envoy does (`listener.0.0.0.0_15001.`).

export type StatKind = 'counter' | 'gauge' | 'histogram';

/** A Prometheus view of a stat: tag-extracted name + labels, computed once at creation. */
export interface PromView {
  /** `envoy_cluster_upstream_cx_total` */
  readonly name: string;
  /** e.g. `[['cluster_name', 'outbound|80||edition.cnn.com']]` */
  readonly labels: readonly (readonly [string, string])[];
}

abstract class Stat {
  readonly name: string;
  readonly prom: PromView;
  /** Set once the stat changed (Envoy's `used` flag, for `/stats?usedonly`). */
  used = false;
  constructor(name: string, prom: PromView) {
    this.name = name;
    this.prom = prom;
  }
  abstract readonly kind: StatKind;
}

export class Counter extends Stat {
  readonly kind = 'counter' as const;
  value = 0;
  inc(): void {
    this.value++;
    this.used = true;
  }
  add(n: number): void {
    this.value += n;
    this.used = true;
  }
}

export class Gauge extends Stat {
  readonly kind = 'gauge' as const;
  value = 0;
  inc(): void {
    this.value++;
    this.used = true;
  }
  dec(): void {
    this.value--;
    this.used = true;
  }
  set(v: number): void {
    this.value = v;
    this.used = true;
  }
}

/** Envoy's default histogram bucket bounds (ms), `supported_quantiles` are computed from these. */
export const HISTOGRAM_BUCKETS: readonly number[] = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];

export class Histogram extends Stat {
  readonly kind = 'histogram' as const;
  /** counts[i] = samples <= HISTOGRAM_BUCKETS[i] and > the previous bound; last slot = above all. */
  readonly counts: number[] = new Array<number>(HISTOGRAM_BUCKETS.length + 1).fill(0);
  count = 0;
  sum = 0;
  record(v: number): void {
    let i = 0;
    while (i < HISTOGRAM_BUCKETS.length && v > HISTOGRAM_BUCKETS[i]!) i++;
    this.counts[i]!++;
    this.count++;
    this.sum += v;
    this.used = true;
  }
}

export type AnyStat = Counter | Gauge | Histogram;

/**
 * Tag extraction as Istio configures Envoy: the cluster name, listener
 * address, HTTP/TCP stat prefix and response code become labels; the rest is the metric name.
 */
export function promViewOf(name: string): PromView {
  const labels: [string, string][] = [];
  let rest = name;
  const take = (prefix: string, label: string): boolean => {
    if (!rest.startsWith(prefix)) return false;
    const tail = rest.slice(prefix.length);
    // The tagged segment runs up to the LAST known stat suffix boundary: names of clusters contain
    // dots (`edition.cnn.com`), so we split on the registered scope, not on the first dot.
    const cut = scopeEnd(tail);
    if (cut < 0) return false;
    labels.push([label, tail.slice(0, cut)]);
    rest = prefix + tail.slice(cut + 1);
    return true;
  };
  if (!take('cluster.', 'cluster_name') && !take('listener.', 'listener_address') && !take('http.', 'http_conn_manager_prefix')) {
    take('tcp.', 'tcp_prefix');
  }
  const code = /_rq_(\d{3}|\dxx)$/.exec(rest);
  if (code) {
    labels.push([code[1]!.endsWith('xx') ? 'response_code_class' : 'response_code', code[1]!]);
    rest = rest.slice(0, code.index) + '_rq';
  }
  return { name: 'envoy_' + rest.replace(/[^a-zA-Z0-9_]/g, '_'), labels };
}

// Scopes are registered by the code that creates them (clusterScope, listenerScope, ...), so the
// Prometheus view knows where a dotted scope name ends. Found by trying each `.`-cut prefix of the
// name from the longest down: a few Set lookups per stat however many scopes exist (a scan of all
// scopes per stat made creating 10k clusters' stats quadratic: 166 s).
const knownScopes = new Set<string>();
function scopeEnd(tail: string): number {
  for (let cut = tail.lastIndexOf('.'); cut > 0; cut = tail.lastIndexOf('.', cut - 1)) {
    if (knownScopes.has(tail.slice(0, cut))) return cut;
  }
  return -1;
}

/** Envoy replaces `:` by `_` in stat names. */
export function sanitizeStatSegment(s: string): string {
  return s.includes(':') ? s.replace(/:/g, '_') : s;
}

export class StatsStore {
  private readonly stats = new Map<string, AnyStat>();
  /** all() sorted, kept until a stat is added (stats are never removed). */
  private sorted: AnyStat[] | null = null;

  /** `prom`: the Prometheus view when the caller already knows it (a worker's stat merged in the primary). */
  counter(name: string, prom?: PromView): Counter {
    return this.getOrCreate(name, Counter, prom);
  }
  gauge(name: string, prom?: PromView): Gauge {
    return this.getOrCreate(name, Gauge, prom);
  }
  histogram(name: string, prom?: PromView): Histogram {
    return this.getOrCreate(name, Histogram, prom);
  }

  /** Declare a dotted scope name (cluster name, listener address, stat prefix) for tag extraction. */
  registerScope(scope: string): void {
    knownScopes.add(scope);
  }

  /** All stats, sorted by name (Envoy's order for counters and gauges). */
  all(): readonly AnyStat[] {
    if (this.sorted === null) this.sorted = [...this.stats.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return this.sorted;
  }

  get(name: string): AnyStat | undefined {
    return this.stats.get(name);
  }

  /** All stats in creation order (stable: stats are never removed), for incremental export. */
  inCreationOrder(): IterableIterator<AnyStat> {
    return this.stats.values();
  }

  get size(): number {
    return this.stats.size;
  }

  /** Also told when counters are reset (the multi-worker primary forwards it to its workers). */
  onResetCounters: (() => void) | null = null;

  /** POST /reset_counters: zero counters only, as Envoy. */
  resetCounters(): void {
    for (const s of this.stats.values()) if (s.kind === 'counter') s.value = 0;
    if (this.onResetCounters !== null) this.onResetCounters();
  }

  private getOrCreate<T extends AnyStat>(name: string, Ctor: new (name: string, prom: PromView) => T, prom?: PromView): T {
    const existing = this.stats.get(name);
    if (existing) {
      if (!(existing instanceof Ctor)) throw new Error(`stat ${name} already exists as a ${existing.kind}`);
      return existing;
    }
    const stat = new Ctor(name, prom ?? promViewOf(name));
    this.stats.set(name, stat);
    this.sorted = null;
    return stat;
  }
}

// ------------------------------------------------------------------ stat bundles

/**
 * The PromView promViewOf gives `cluster.<scope>.<suffix>` for a suffix without a dot, once the
 * scope is registered: the last `.` cut leaves exactly the scope, a known scope, so the label is
 * `cluster_name="<scope>"` and the name is `envoy_cluster_<suffix>`. (A dotted suffix such as
 * `ssl.handshake` first tries `<scope>.ssl`, which another cluster's name could be: those keep promViewOf.)
 */
function clusterProm(suffix: string, labels: PromView['labels']): PromView {
  let name = clusterPromNames.get(suffix);
  if (name === undefined) {
    name = 'envoy_' + ('cluster.' + suffix).replace(/[^a-zA-Z0-9_]/g, '_');
    clusterPromNames.set(suffix, name);
  }
  return { name, labels };
}
const clusterPromNames = new Map<string, string>();

/** `cluster.<name>.*`: resolved once per cluster, kept across reloads while the cluster exists. */
export class ClusterStats {
  readonly upstream_cx_total: Counter;
  readonly upstream_cx_active: Gauge;
  readonly upstream_cx_http1_total: Counter;
  readonly upstream_cx_http2_total: Counter;
  readonly upstream_cx_connect_fail: Counter;
  readonly upstream_cx_connect_timeout: Counter;
  readonly upstream_cx_overflow: Counter;
  readonly upstream_cx_none_healthy: Counter;
  readonly upstream_cx_destroy: Counter;
  readonly upstream_cx_destroy_local: Counter;
  readonly upstream_cx_destroy_remote: Counter;
  readonly upstream_cx_rx_bytes_total: Counter;
  readonly upstream_cx_tx_bytes_total: Counter;
  readonly upstream_cx_connect_ms: Histogram;
  readonly upstream_cx_length_ms: Histogram;
  readonly upstream_rq_total: Counter;
  readonly upstream_rq_active: Gauge;
  readonly upstream_rq_completed: Counter;
  readonly upstream_rq_timeout: Counter;
  readonly upstream_rq_rx_reset: Counter;
  readonly upstream_rq_tx_reset: Counter;
  readonly upstream_rq_pending_overflow: Counter;
  readonly upstream_rq_retry: Counter;
  readonly upstream_rq_retry_success: Counter;
  readonly upstream_rq_retry_limit_exceeded: Counter;
  readonly upstream_rq_time: Histogram;
  readonly membership_total: Gauge;
  readonly membership_healthy: Gauge;
  readonly membership_change: Counter;
  readonly ssl_handshake: Counter;
  readonly ssl_connection_error: Counter;
  readonly ssl_fail_verify_error: Counter;
  readonly ssl_fail_verify_san: Counter;
  readonly ssl_no_certificate: Counter;
  readonly ssl_session_reused: Counter;
  private readonly prefix: string;
  private readonly store: StatsStore;
  /** upstream_rq_<code> and _<N>xx, created on first use of each code (one Map hit per response). */
  private readonly byCode = new Map<number, readonly [Counter, Counter]>();

  constructor(store: StatsStore, clusterName: string) {
    const scope = sanitizeStatSegment(clusterName);
    store.registerScope(scope);
    const p = 'cluster.' + scope + '.';
    this.prefix = p;
    this.store = store;
    // One label list for all of this cluster's stats: at 60,000 clusters, tag extraction per stat
    // (promViewOf) was a third of building them. clusterProm gives what it would give.
    const labels: PromView['labels'] = [['cluster_name', scope]];
    this.upstream_cx_total = store.counter(p + 'upstream_cx_total', clusterProm('upstream_cx_total', labels));
    this.upstream_cx_active = store.gauge(p + 'upstream_cx_active', clusterProm('upstream_cx_active', labels));
    this.upstream_cx_http1_total = store.counter(p + 'upstream_cx_http1_total', clusterProm('upstream_cx_http1_total', labels));
    this.upstream_cx_http2_total = store.counter(p + 'upstream_cx_http2_total', clusterProm('upstream_cx_http2_total', labels));
    this.upstream_cx_connect_fail = store.counter(p + 'upstream_cx_connect_fail', clusterProm('upstream_cx_connect_fail', labels));
    this.upstream_cx_connect_timeout = store.counter(p + 'upstream_cx_connect_timeout', clusterProm('upstream_cx_connect_timeout', labels));
    this.upstream_cx_overflow = store.counter(p + 'upstream_cx_overflow', clusterProm('upstream_cx_overflow', labels));
    this.upstream_cx_none_healthy = store.counter(p + 'upstream_cx_none_healthy', clusterProm('upstream_cx_none_healthy', labels));
    this.upstream_cx_destroy = store.counter(p + 'upstream_cx_destroy', clusterProm('upstream_cx_destroy', labels));
    this.upstream_cx_destroy_local = store.counter(p + 'upstream_cx_destroy_local', clusterProm('upstream_cx_destroy_local', labels));
    this.upstream_cx_destroy_remote = store.counter(p + 'upstream_cx_destroy_remote', clusterProm('upstream_cx_destroy_remote', labels));
    this.upstream_cx_rx_bytes_total = store.counter(p + 'upstream_cx_rx_bytes_total', clusterProm('upstream_cx_rx_bytes_total', labels));
    this.upstream_cx_tx_bytes_total = store.counter(p + 'upstream_cx_tx_bytes_total', clusterProm('upstream_cx_tx_bytes_total', labels));
    this.upstream_cx_connect_ms = store.histogram(p + 'upstream_cx_connect_ms', clusterProm('upstream_cx_connect_ms', labels));
    this.upstream_cx_length_ms = store.histogram(p + 'upstream_cx_length_ms', clusterProm('upstream_cx_length_ms', labels));
    this.upstream_rq_total = store.counter(p + 'upstream_rq_total', clusterProm('upstream_rq_total', labels));
    this.upstream_rq_active = store.gauge(p + 'upstream_rq_active', clusterProm('upstream_rq_active', labels));
    this.upstream_rq_completed = store.counter(p + 'upstream_rq_completed', clusterProm('upstream_rq_completed', labels));
    this.upstream_rq_timeout = store.counter(p + 'upstream_rq_timeout', clusterProm('upstream_rq_timeout', labels));
    this.upstream_rq_rx_reset = store.counter(p + 'upstream_rq_rx_reset', clusterProm('upstream_rq_rx_reset', labels));
    this.upstream_rq_tx_reset = store.counter(p + 'upstream_rq_tx_reset', clusterProm('upstream_rq_tx_reset', labels));
    this.upstream_rq_pending_overflow = store.counter(p + 'upstream_rq_pending_overflow', clusterProm('upstream_rq_pending_overflow', labels));
    this.upstream_rq_retry = store.counter(p + 'upstream_rq_retry', clusterProm('upstream_rq_retry', labels));
    this.upstream_rq_retry_success = store.counter(p + 'upstream_rq_retry_success', clusterProm('upstream_rq_retry_success', labels));
    this.upstream_rq_retry_limit_exceeded = store.counter(p + 'upstream_rq_retry_limit_exceeded', clusterProm('upstream_rq_retry_limit_exceeded', labels));
    this.upstream_rq_time = store.histogram(p + 'upstream_rq_time', clusterProm('upstream_rq_time', labels));
    this.membership_total = store.gauge(p + 'membership_total', clusterProm('membership_total', labels));
    this.membership_healthy = store.gauge(p + 'membership_healthy', clusterProm('membership_healthy', labels));
    this.membership_change = store.counter(p + 'membership_change', clusterProm('membership_change', labels));
    this.ssl_handshake = store.counter(p + 'ssl.handshake');
    this.ssl_connection_error = store.counter(p + 'ssl.connection_error');
    this.ssl_fail_verify_error = store.counter(p + 'ssl.fail_verify_error');
    this.ssl_fail_verify_san = store.counter(p + 'ssl.fail_verify_san');
    this.ssl_no_certificate = store.counter(p + 'ssl.no_certificate');
    this.ssl_session_reused = store.counter(p + 'ssl.session_reused');
  }

  /** Count a final response code: `upstream_rq_301` and `upstream_rq_3xx`. */
  responseCode(code: number): void {
    let pair = this.byCode.get(code);
    if (pair === undefined) {
      pair = [this.store.counter(this.prefix + 'upstream_rq_' + code), this.store.counter(this.prefix + 'upstream_rq_' + Math.floor(code / 100) + 'xx')];
      this.byCode.set(code, pair);
    }
    pair[0].inc();
    pair[1].inc();
  }
}

/** `listener.<address>_<port>.*` */
export class ListenerStats {
  readonly downstream_cx_total: Counter;
  readonly downstream_cx_active: Gauge;
  readonly downstream_cx_destroy: Counter;
  readonly downstream_cx_length_ms: Histogram;
  readonly no_filter_chain_match: Counter;
  readonly ssl_handshake: Counter;
  readonly ssl_connection_error: Counter;
  readonly ssl_fail_verify_error: Counter;
  readonly ssl_fail_verify_no_cert: Counter;
  readonly ssl_fail_verify_san: Counter;
  readonly ssl_no_certificate: Counter;

  constructor(store: StatsStore, listenerName: string) {
    const scope = sanitizeStatSegment(listenerName);
    store.registerScope(scope);
    const p = 'listener.' + scope + '.';
    this.downstream_cx_total = store.counter(p + 'downstream_cx_total');
    this.downstream_cx_active = store.gauge(p + 'downstream_cx_active');
    this.downstream_cx_destroy = store.counter(p + 'downstream_cx_destroy');
    this.downstream_cx_length_ms = store.histogram(p + 'downstream_cx_length_ms');
    this.no_filter_chain_match = store.counter(p + 'no_filter_chain_match');
    this.ssl_handshake = store.counter(p + 'ssl.handshake');
    this.ssl_connection_error = store.counter(p + 'ssl.connection_error');
    this.ssl_fail_verify_error = store.counter(p + 'ssl.fail_verify_error');
    this.ssl_fail_verify_no_cert = store.counter(p + 'ssl.fail_verify_no_cert');
    this.ssl_fail_verify_san = store.counter(p + 'ssl.fail_verify_san');
    this.ssl_no_certificate = store.counter(p + 'ssl.no_certificate');
  }
}

/** `http.<stat_prefix>.*` (HTTP connection manager) */
export class HttpStats {
  readonly downstream_cx_total: Counter;
  readonly downstream_cx_active: Gauge;
  readonly downstream_cx_http1_total: Counter;
  readonly downstream_cx_http2_total: Counter;
  readonly downstream_cx_protocol_error: Counter;
  readonly downstream_rq_header_timeout: Counter;
  readonly downstream_rq_http1_total: Counter;
  readonly downstream_rq_http2_total: Counter;
  readonly downstream_rq_total: Counter;
  readonly downstream_rq_active: Gauge;
  readonly downstream_rq_completed: Counter;
  readonly downstream_rq_rx_reset: Counter;
  readonly downstream_rq_tx_reset: Counter;
  readonly downstream_rq_time: Histogram;
  /** indexed by status class 1..5 */
  readonly downstream_rq_xx: readonly Counter[];
  readonly no_route: Counter;
  /** Envoy's RBAC filter stats (`http.<prefix>.rbac.allowed|denied`): AuthorizationPolicy verdicts. */
  readonly rbac_allowed: Counter;
  readonly rbac_denied: Counter;
  /** Denials let through in report mode (Envoy's shadow rules: `rbac.shadow_denied`). */
  readonly rbac_shadow_denied: Counter;
  readonly no_cluster: Counter;

  constructor(store: StatsStore, statPrefix: string) {
    const scope = sanitizeStatSegment(statPrefix);
    store.registerScope(scope);
    const p = 'http.' + scope + '.';
    this.downstream_cx_total = store.counter(p + 'downstream_cx_total');
    this.downstream_cx_active = store.gauge(p + 'downstream_cx_active');
    this.downstream_cx_http1_total = store.counter(p + 'downstream_cx_http1_total');
    this.downstream_cx_http2_total = store.counter(p + 'downstream_cx_http2_total');
    this.downstream_rq_http1_total = store.counter(p + 'downstream_rq_http1_total');
    this.downstream_rq_http2_total = store.counter(p + 'downstream_rq_http2_total');
    this.downstream_cx_protocol_error = store.counter(p + 'downstream_cx_protocol_error');
    this.downstream_rq_header_timeout = store.counter(p + 'downstream_rq_header_timeout');
    this.downstream_rq_total = store.counter(p + 'downstream_rq_total');
    this.downstream_rq_active = store.gauge(p + 'downstream_rq_active');
    this.downstream_rq_completed = store.counter(p + 'downstream_rq_completed');
    this.downstream_rq_rx_reset = store.counter(p + 'downstream_rq_rx_reset');
    this.downstream_rq_tx_reset = store.counter(p + 'downstream_rq_tx_reset');
    this.downstream_rq_time = store.histogram(p + 'downstream_rq_time');
    this.downstream_rq_xx = [1, 2, 3, 4, 5].map((c) => store.counter(p + 'downstream_rq_' + c + 'xx'));
    this.no_route = store.counter(p + 'no_route');
    this.rbac_allowed = store.counter(p + 'rbac.allowed');
    this.rbac_denied = store.counter(p + 'rbac.denied');
    this.rbac_shadow_denied = store.counter(p + 'rbac.shadow_denied');
    this.no_cluster = store.counter(p + 'no_cluster');
  }

  responseCode(code: number): void {
    const c = this.downstream_rq_xx[Math.floor(code / 100) - 1];
    if (c) c.inc();
  }
}

/** `tcp.<stat_prefix>.*` (TCP proxy) */
export class TcpStats {
  readonly downstream_cx_total: Counter;
  readonly downstream_cx_no_route: Counter;
  readonly downstream_cx_rx_bytes_total: Counter;
  readonly downstream_cx_tx_bytes_total: Counter;
  readonly idle_timeout: Counter;

  constructor(store: StatsStore, statPrefix: string) {
    const scope = sanitizeStatSegment(statPrefix);
    store.registerScope(scope);
    const p = 'tcp.' + scope + '.';
    this.downstream_cx_total = store.counter(p + 'downstream_cx_total');
    this.downstream_cx_no_route = store.counter(p + 'downstream_cx_no_route');
    this.downstream_cx_rx_bytes_total = store.counter(p + 'downstream_cx_rx_bytes_total');
    this.downstream_cx_tx_bytes_total = store.counter(p + 'downstream_cx_tx_bytes_total');
    this.idle_timeout = store.counter(p + 'idle_timeout');
  }
}
