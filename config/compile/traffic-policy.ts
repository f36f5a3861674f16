// DestinationRule traffic policy -> per-cluster settings. The merge follows Istio's
// `MergeTrafficPolicy` exactly:
//   1. the DR's top-level policy, with its portLevelSettings for this port *replacing* (not
//      merging) loadBalancer, connectionPool, outlierDetection and tls;
//   2. the subset's policy overrides per setting;
//   3. the subset's portLevelSettings for this port replace all four again.
// "Port level policies do not inherit": an omitted field in a port setting means the default.

import type {
  ClientTLSSettings, ConnectionPoolSettings, LoadBalancerSettings, OutlierDetection, TrafficPolicy,
} from '../resources/types';
import type { CircuitBreakers, LbPolicy, OutlierConfig, UpstreamTls, WarmupConfig } from './snapshot';
import { ISTIO_MAX_UINT32 } from './snapshot';

export interface EffectivePolicy {
  readonly loadBalancer: LoadBalancerSettings | undefined;
  readonly connectionPool: ConnectionPoolSettings | undefined;
  readonly outlierDetection: OutlierDetection | undefined;
  readonly tls: ClientTLSSettings | undefined;
}

const EMPTY: EffectivePolicy = { loadBalancer: undefined, connectionPool: undefined, outlierDetection: undefined, tls: undefined };

function atPort(p: TrafficPolicy, port: number): EffectivePolicy {
  const pl = (p.portLevelSettings ?? []).find((s) => s.port?.number === port);
  if (pl !== undefined) {
    return { loadBalancer: pl.loadBalancer, connectionPool: pl.connectionPool, outlierDetection: pl.outlierDetection, tls: pl.tls };
  }
  return { loadBalancer: p.loadBalancer, connectionPool: p.connectionPool, outlierDetection: p.outlierDetection, tls: p.tls };
}

export function mergeTrafficPolicy(top: TrafficPolicy | undefined, subset: TrafficPolicy | undefined, port: number): EffectivePolicy {
  const base = top === undefined ? EMPTY : atPort(top, port);
  if (subset === undefined) return base;
  const merged = {
    loadBalancer: subset.loadBalancer ?? base.loadBalancer,
    connectionPool: subset.connectionPool ?? base.connectionPool,
    outlierDetection: subset.outlierDetection ?? base.outlierDetection,
    tls: subset.tls ?? base.tls,
  };
  const pl = (subset.portLevelSettings ?? []).find((s) => s.port?.number === port);
  if (pl === undefined) return merged;
  return { loadBalancer: pl.loadBalancer, connectionPool: pl.connectionPool, outlierDetection: pl.outlierDetection, tls: pl.tls };
}

/** Istio's default is LEAST_REQUEST, and LEAST_CONN is its deprecated alias (§3.8). */
export function lbPolicy(lb: LoadBalancerSettings | undefined): LbPolicy {
  const ch = lb?.consistentHash;
  if (ch !== undefined) {
    if (ch.httpHeaderName !== undefined) return { kind: 'CONSISTENT_HASH', key: 'header', name: ch.httpHeaderName.toLowerCase() };
    if (ch.httpCookie !== undefined) return { kind: 'CONSISTENT_HASH', key: 'cookie', name: ch.httpCookie.name };
    if (ch.httpQueryParameterName !== undefined) return { kind: 'CONSISTENT_HASH', key: 'queryParameter', name: ch.httpQueryParameterName };
    return { kind: 'CONSISTENT_HASH', key: 'sourceIp', name: '' };
  }
  switch (lb?.simple) {
    case 'ROUND_ROBIN': return { kind: 'ROUND_ROBIN' };
    case 'RANDOM': return { kind: 'RANDOM' };
    case 'PASSTHROUGH': return { kind: 'PASSTHROUGH' };
    default: return { kind: 'LEAST_REQUEST' };
  }
}

/**
 * outlierDetection -> Envoy's, with Istio's (cluster_traffic_policy.go) and Envoy's
 * (outlier_detection.proto) defaults: consecutive5xxErrors 5
 * (0 disables), consecutiveGatewayErrors off unless set, interval 10 s, baseEjectionTime 30 s,
 * maxEjectionPercent 10, minHealthPercent 0 (panic mode off); local-origin failures count apart
 * only with splitExternalLocalOriginErrors (then consecutiveLocalOriginFailures, default 5).
 */
export function outlierConfig(od: OutlierDetection | undefined): OutlierConfig | null {
  if (od === undefined) return null;
  return {
    consecutive5xx: od.consecutive5xxErrors ?? 5,
    consecutiveGatewayErrors: od.consecutiveGatewayErrors ?? 0,
    splitLocalOrigin: od.splitExternalLocalOriginErrors === true,
    consecutiveLocalOrigin: od.splitExternalLocalOriginErrors === true ? od.consecutiveLocalOriginFailures ?? 5 : 0,
    intervalMs: od.intervalMs ?? 10_000,
    baseEjectionMs: od.baseEjectionTimeMs ?? 30_000,
    maxEjectionMs: 300_000,
    maxEjectionPercent: od.maxEjectionPercent ?? 10,
    minHealthPercent: od.minHealthPercent ?? 0,
  };
}

/** `warmup` (or the deprecated `warmupDurationSecs`) -> slow start, Envoy's defaults for the rest. */
export function warmupConfig(lb: LoadBalancerSettings | undefined): WarmupConfig | null {
  const w = lb?.warmup;
  if (w !== undefined && w.durationMs !== undefined && w.durationMs > 0) {
    return { durationMs: w.durationMs, minWeightPercent: w.minimumPercent ?? 10, aggression: w.aggression ?? 1 };
  }
  if (lb?.warmupDurationSecs !== undefined && lb.warmupDurationSecs > 0) return { durationMs: lb.warmupDurationSecs * 1000, minWeightPercent: 10, aggression: 1 };
  return null;
}

export interface PoolSettings {
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxRequestsPerConnection: number;
  readonly tcpKeepalive: { readonly timeMs: number; readonly intervalMs: number; readonly probes: number } | null;
  readonly circuitBreakers: CircuitBreakers;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 3_600_000;
export const DEFAULT_DNS_REFRESH_MS = 60_000;

/** connectionPool -> settings with Istio's defaults (§3.8: 10s connect, 1h idle, MaxUint32 limits). */
export function poolSettings(cp: ConnectionPoolSettings | undefined): PoolSettings {
  const ka = cp?.tcp?.tcpKeepalive;
  return {
    connectTimeoutMs: cp?.tcp?.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    // The TCP proxy's idle timeout (Istio: tcp.idleTimeout -> tcp_proxy idle_timeout). The HTTP
    // pool's idle timeout (http.idleTimeout) is undici's keep-alive business, not this field.
    idleTimeoutMs: cp?.tcp?.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    maxRequestsPerConnection: cp?.http?.maxRequestsPerConnection ?? 0,
    // Unset keepalive fields fall back to Linux's defaults, which is what Envoy leaves in place.
    tcpKeepalive: ka === undefined ? null : { timeMs: ka.timeMs ?? 7_200_000, intervalMs: ka.intervalMs ?? 75_000, probes: ka.probes ?? 9 },
    // Istio applies each limit only when > 0 (applyConnectionPool: "there isn't a way to
    // distinguish between unset values and zero values"), so an explicit 0 means the default.
    circuitBreakers: {
      maxConnections: positiveOrDefault(cp?.tcp?.maxConnections),
      maxPendingRequests: positiveOrDefault(cp?.http?.http1MaxPendingRequests),
      maxRequests: positiveOrDefault(cp?.http?.http2MaxRequests),
      maxRetries: positiveOrDefault(cp?.http?.maxRetries),
    },
  };
}

function positiveOrDefault(v: number | undefined): number {
  return v !== undefined && v > 0 ? v : ISTIO_MAX_UINT32;
}

function joinPath(dir: string, file: string): string {
  return dir.endsWith('/') ? dir + file : `${dir}/${file}`;
}

/** The workload identity files (`--certs`), as istio-agent writes them. */
export function workloadCerts(certsDir: string): { certFile: string; keyFile: string; caFile: string } {
  return {
    certFile: joinPath(certsDir, 'cert-chain.pem'),
    keyFile: joinPath(certsDir, 'key.pem'),
    caFile: joinPath(certsDir, 'root-cert.pem'),
  };
}

/**
 * DR tls -> TLS origination (`I:…/core/cluster_tls.go`). SIMPLE/MUTUAL: DR files, no CA = system
 * roots, SANs from the DR else the ServiceEntry, auto SNI (from the request's Host) when the DR
 * gives neither `sni` nor `subjectAltNames`. ISTIO_MUTUAL: workload identity, SNI defaults to the
 * `outbound_.` form, ALPN `istio-peer-exchange, istio`.
 */
export function upstreamTls(
  tls: ClientTLSSettings | undefined, certsDir: string, sniName: string, seSubjectAltNames: readonly string[],
): UpstreamTls | null {
  if (tls === undefined || tls.mode === undefined || tls.mode === 'DISABLE') return null;
  const drSans = tls.subjectAltNames ?? [];
  if (tls.mode === 'ISTIO_MUTUAL') {
    const c = workloadCerts(certsDir);
    return {
      mode: 'ISTIO_MUTUAL', sni: tls.sni ?? sniName, autoSni: false,
      caFile: c.caFile, certFile: c.certFile, keyFile: c.keyFile,
      subjectAltNames: drSans.length > 0 ? drSans : seSubjectAltNames,
      insecureSkipVerify: tls.insecureSkipVerify ?? false,
      alpn: ['istio-peer-exchange', 'istio'],
    };
  }
  return {
    mode: tls.mode,
    sni: tls.sni ?? null,
    autoSni: tls.sni === undefined && drSans.length === 0,
    caFile: tls.caCertificates ?? null,
    certFile: tls.mode === 'MUTUAL' ? tls.clientCertificate ?? null : null,
    keyFile: tls.mode === 'MUTUAL' ? tls.privateKey ?? null : null,
    subjectAltNames: drSans.length > 0 ? drSans : seSubjectAltNames,
    insecureSkipVerify: tls.insecureSkipVerify ?? false,
    alpn: [],
  };
}
