// Envoy's retry decisions for one route's policy (source/common/router/retry_state_impl.cc, as
// Istio configures it): which upstream responses and failures a retry may fix, the jittered
// exponential back-off between tries, and the retry stats Envoy keeps beside the cluster's
// (`upstream_rq_retry_overflow`, `_retry_backoff_exponential`, `upstream_rq_per_try_timeout`).
//
//   5xx               any 5xx response, and every reset / connect failure / per-try timeout
//   gateway-error     502, 503, 504 responses, and the same failures as 5xx
//   reset             a reset or disconnect (and a per-try timeout)
//   connect-failure   the connect failed or timed out
//   refused-stream    an HTTP/2 upstream's REFUSED_STREAM reset (HTTP/1.1 has none)
//   retriable-4xx     409
//   retriable-status-codes   the listed codes (bare numbers in `retryOn`)
//   envoy-ratelimited a response carrying `x-envoy-ratelimited`
//   cancelled, deadline-exceeded, internal, resource-exhausted, unavailable   the `grpc-status` header

import type { RetryPolicy } from '../../config/compile/snapshot';
import { ProxyErrorCode, type ProxyErrorCodeValue } from '../errors';
import { sanitizeStatSegment, type ClusterStats, type Counter, type StatsStore } from '../observe/stats';
import type { ResponseHead } from './h1-head';

function headerValue(head: ResponseHead, name: string): string | null {
  const raw = head.raw;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === name.length && raw[i]!.toLowerCase() === name) return raw[i + 1]!;
  }
  return null;
}

/** Would a retry be tried for this response (Envoy wouldRetryFromHeaders)? */
export function retriableResponse(p: RetryPolicy, head: ResponseHead): boolean {
  const on = p.on;
  const status = head.status;
  if (on.fiveXx && status >= 500 && status <= 599) return true;
  if (on.gatewayError && (status === 502 || status === 503 || status === 504)) return true;
  if (on.retriable4xx && status === 409) return true;
  if (on.retriableStatusCodes && p.statusCodes.includes(status)) return true;
  if (on.envoyRateLimited && headerValue(head, 'x-envoy-ratelimited') !== null) return true;
  if (on.grpcStatuses.length > 0) {
    const g = headerValue(head, 'grpc-status');
    if (g !== null && on.grpcStatuses.includes(Number(g))) return true;
  }
  return false;
}

/**
 * Would a retry be tried after this failure (Envoy wouldRetryFromReset)? `requestSent`: the
 * request went out on a connection (a connect failure never sent it).
 */
export function retriableFailure(p: RetryPolicy, code: ProxyErrorCodeValue, requestSent: boolean, transportReason: string | null = null): boolean {
  const on = p.on;
  // An HTTP/2 upstream's REFUSED_STREAM (h2-upstream.ts): the request was not processed.
  if (on.refusedStream && transportReason === 'refused_stream_reset') return true;
  const connectFailure = code === ProxyErrorCode.UPSTREAM_CONNECT || code === ProxyErrorCode.UPSTREAM_CONNECT_TIMEOUT || code === ProxyErrorCode.UPSTREAM_TLS;
  if (connectFailure) return on.connectFailure || on.fiveXx || on.gatewayError || on.resetBeforeRequest;
  if (code === ProxyErrorCode.UPSTREAM_RESET || code === ProxyErrorCode.UPSTREAM_PER_TRY_TIMEOUT) {
    return on.fiveXx || on.gatewayError || on.reset || (on.resetBeforeRequest && !requestSent);
  }
  return false;
}

/**
 * Envoy's JitteredExponentialBackOffStrategy: before retry n (1-based) a random delay in
 * [0, (2^n - 1) * base), capped at 10 * base (the default max_interval).
 */
export function backoffMs(baseMs: number, retryNumber: number): number {
  const max = 10 * baseMs;
  const ceiling = Math.min(max, (2 ** Math.min(retryNumber, 30) - 1) * baseMs);
  return Math.floor(Math.random() * ceiling);
}

/** The retry stats Envoy adds to a cluster, created on the cluster's first retry decision. */
export class RetryStats {
  readonly upstream_rq_retry_overflow: Counter;
  readonly upstream_rq_retry_backoff_exponential: Counter;
  readonly upstream_rq_per_try_timeout: Counter;
  /** retries scheduled or running now: the maxRetries circuit breaker (Envoy's `remaining_retries`) */
  active = 0;

  constructor(store: StatsStore, clusterName: string) {
    const p = 'cluster.' + sanitizeStatSegment(clusterName) + '.';
    this.upstream_rq_retry_overflow = store.counter(p + 'upstream_rq_retry_overflow');
    this.upstream_rq_retry_backoff_exponential = store.counter(p + 'upstream_rq_retry_backoff_exponential');
    this.upstream_rq_per_try_timeout = store.counter(p + 'upstream_rq_per_try_timeout');
  }
}

const byCluster = new WeakMap<ClusterStats, RetryStats>();

export function retryStatsFor(store: StatsStore, clusterName: string, stats: ClusterStats): RetryStats {
  let s = byCluster.get(stats);
  if (s === undefined) {
    s = new RetryStats(store, clusterName);
    byCluster.set(stats, s);
  }
  return s;
}
