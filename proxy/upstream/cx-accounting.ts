// Envoy's per-connection cluster accounting, one function per moment of an upstream connection's
// life, shared by the net.Socket connector (connect.ts) and the bare-handle one (handle-connect.ts)
// so both count exactly alike: upstream_cx_total when the connection is created (failures included,
// as Envoy counts them), upstream_cx_connect_fail / _connect_timeout, upstream_cx_active,
// upstream_cx_connect_ms, and on close upstream_cx_destroy(_local|_remote), upstream_cx_length_ms
// and the byte totals; plus the host's counters that /clusters shows.

import { performance } from 'node:perf_hooks';
import { ProxyErrorCode, type ProxyError } from '../errors';
import type { ClusterStats } from '../observe/stats';
import type { UpstreamHost } from './host';

export function countOpened(stats: ClusterStats, host: UpstreamHost): void {
  stats.upstream_cx_total.inc();
  stats.upstream_cx_active.inc();
  host.counters.cx_total++;
  host.counters.cx_active++;
}

export function countConnectFailure(stats: ClusterStats, host: UpstreamHost, err: ProxyError): void {
  if (err.code === ProxyErrorCode.UPSTREAM_CONNECT_TIMEOUT) stats.upstream_cx_connect_timeout.inc();
  stats.upstream_cx_connect_fail.inc();
  host.counters.cx_connect_fail++;
  // Envoy's LOCAL_ORIGIN_CONNECT_FAILED (a timeout is LOCAL_ORIGIN_TIMEOUT) for outlier detection.
  host.outlier?.localOriginFailure(err.code === ProxyErrorCode.UPSTREAM_CONNECT_TIMEOUT);
}

export function countConnected(stats: ClusterStats, host: UpstreamHost, startHr: number): void {
  host.outlier?.localOriginSuccess();
  stats.upstream_cx_connect_ms.record(performance.now() - startHr);
}

export interface ClosedConnection {
  /** closed by this side (a failed connect, a reset, a destroy before the peer's FIN) */
  readonly local: boolean;
  readonly rxBytes: number;
  readonly txBytes: number;
  /** performance.now() at creation when the connection was established, else null */
  readonly connectedFrom: number | null;
}

export function countClosed(stats: ClusterStats, host: UpstreamHost, c: ClosedConnection): void {
  stats.upstream_cx_active.dec();
  host.counters.cx_active--;
  stats.upstream_cx_destroy.inc();
  if (c.local) stats.upstream_cx_destroy_local.inc();
  else stats.upstream_cx_destroy_remote.inc();
  stats.upstream_cx_rx_bytes_total.add(c.rxBytes);
  stats.upstream_cx_tx_bytes_total.add(c.txBytes);
  if (c.connectedFrom !== null) stats.upstream_cx_length_ms.record(performance.now() - c.connectedFrom);
}
