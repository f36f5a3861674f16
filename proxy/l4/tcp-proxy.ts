// Envoy's tcp_proxy filter: pick the TCP route (first match on destination/source/SNI), pick a
// cluster by weight and a host by the cluster's load balancer, connect (originating TLS if the
// DestinationRule says so), then relay bytes both ways until both sides are done. One access-log
// line per connection, in Istio's TCP shape (`"- - -" 0 <flags> ...`).

import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { TcpProxy } from '../../config/compile/snapshot';
import { findTcpRoute, pickCluster } from '../../config/compile/lookup';
import type { ProxyContext } from '../context';
import { ProxyErrorCode, rescueFor, type ProxyError } from '../errors';
import { AccessLogRecord } from '../observe/access-log-record';
import type { TcpStats } from '../observe/stats';
import type { OriginalDestination } from '../upstream/cluster';
import type { UpstreamHost } from '../upstream/host';
import { relay, type RelayResult } from './relay';

/** What the listener learnt about a downstream connection. */
export interface L4Info {
  readonly originalDst: OriginalDestination | null;
  /** destination IP used for route matching (original dst, or the local address on gateways) */
  readonly dstIp: string;
  readonly localAddress: string;
  readonly remoteIp: string;
  readonly remoteAddress: string;
  readonly sni: string | null;
}

/** Route by the filter's TCP routes. */
export function proxyTcp(ctx: ProxyContext, downstream: net.Socket, head: Buffer | null, filter: TcpProxy, info: L4Info): void {
  const stats = ctx.tcpStatsFor(filter.statPrefix);
  stats.downstream_cx_total.inc();
  const route = findTcpRoute(filter.routes, info.dstIp, info.remoteIp, info.sni);
  if (route === null) {
    stats.downstream_cx_no_route.inc();
    const record = newTcpRecord(info);
    failConnection(ctx, downstream, record, rescueFor(ProxyErrorCode.NO_ROUTE).flags, 'filter_chain_not_found');
    return;
  }
  connectAndRelay(ctx, downstream, head, pickCluster(route.clusters, Math.random()), stats, info, route.name);
}

/** Straight to one cluster (the sidecar catch-all: PassthroughCluster / BlackHoleCluster). */
export function proxyTcpToCluster(ctx: ProxyContext, downstream: net.Socket, head: Buffer | null, clusterName: string, info: L4Info): void {
  const stats = ctx.tcpStatsFor(clusterName);
  stats.downstream_cx_total.inc();
  connectAndRelay(ctx, downstream, head, clusterName, stats, info, null);
}

function newTcpRecord(info: L4Info): AccessLogRecord {
  const r = new AccessLogRecord(Date.now(), performance.now());
  r.downstreamLocalAddress = info.localAddress;
  r.downstreamRemoteAddress = info.remoteAddress;
  r.requestedServerName = info.sni;
  return r;
}

function failConnection(ctx: ProxyContext, downstream: net.Socket, record: AccessLogRecord, flags: string, details: string | null, transportReason: string | null = null): void {
  record.addFlag(flags);
  record.connectionTerminationDetails = details;
  record.upstreamTransportFailureReason = transportReason;
  record.durationMs = Math.round(performance.now() - record.startHr);
  downstream.destroy();
  ctx.accessLog.log(record);
}

function connectAndRelay(ctx: ProxyContext, downstream: net.Socket, head: Buffer | null, clusterName: string, stats: TcpStats, info: L4Info, routeName: string | null): void {
  const record = newTcpRecord(info);
  record.upstreamCluster = clusterName;
  record.routeName = routeName;
  const cluster = ctx.clusters.get(clusterName);
  if (cluster === undefined) {
    failConnection(ctx, downstream, record, 'NC', 'cluster_not_found');
    return;
  }
  const host = cluster.pick({ sourceIp: info.remoteIp, hashValue: null }, info.originalDst);
  if (host === null) {
    cluster.stats.upstream_cx_none_healthy.inc();
    failConnection(ctx, downstream, record, 'UH', null);
    return;
  }
  record.upstreamHost = host.key;
  // Hold downstream bytes while connecting; the relay resumes it.
  downstream.pause();
  let downstreamGone = false;
  const onEarlyClose = (): void => {
    downstreamGone = true;
  };
  downstream.once('close', onEarlyClose);
  downstream.on('error', noop);
  cluster.connect(host, info.sni, (err: ProxyError | null, upstream: net.Socket | null) => {
    downstream.removeListener('close', onEarlyClose);
    if (err !== null || upstream === null) {
      failConnection(ctx, downstream, record, rescueFor(err?.code ?? ProxyErrorCode.UPSTREAM_CONNECT).flags, null, err?.transportReason ?? null);
      return;
    }
    if (downstreamGone) {
      upstream.destroy();
      record.addFlag('DC');
      record.durationMs = Math.round(performance.now() - record.startHr);
      ctx.accessLog.log(record);
      return;
    }
    record.upstreamLocalAddress = upstream.localAddress === undefined ? null : formatAddress(upstream.localAddress, upstream.localPort ?? 0);
    host.counters.rq_total++;
    relay(downstream, upstream, head, {
      onClose(r: RelayResult) {
        finishRelay(ctx, record, stats, host, r);
      },
    });
  });
}

function finishRelay(ctx: ProxyContext, record: AccessLogRecord, stats: TcpStats, host: UpstreamHost, r: RelayResult): void {
  record.bytesReceived = r.bytesFromDownstream;
  record.bytesSent = r.bytesFromUpstream;
  stats.downstream_cx_rx_bytes_total.add(r.bytesFromDownstream);
  stats.downstream_cx_tx_bytes_total.add(r.bytesFromUpstream);
  if (r.error !== null) {
    // Envoy: UC when the upstream reset the connection, DC when the downstream did.
    record.addFlag(r.downstreamError ? 'DC' : 'UC');
    host.counters.rq_error++;
  } else {
    host.counters.rq_success++;
  }
  record.durationMs = Math.round(performance.now() - record.startHr);
  ctx.accessLog.log(record);
}

export function formatAddress(ip: string, port: number): string {
  return (ip.includes(':') ? '[' + ip + ']' : ip) + ':' + port;
}

function noop(): void {}
