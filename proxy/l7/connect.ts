// HTTP CONNECT on the explicit proxy listener (RFC 9110 §9.3.6): `CONNECT host:port` asks for a
// tunnel to host:port, which sluice routes exactly as it routes a captured connection to that host
// and port: the sidecar's listener for the port, its filter chain for SNI = host (a TLS client
// behind CONNECT sends that SNI; the chain is chosen before its bytes arrive), then that chain's
// TCP route and cluster, with the bytes relayed on the L4 path (l4/tcp-proxy.ts: the same stats,
// idle timeout and access-log line as any TCP/TLS connection). A plain-HTTP port's chain takes the
// tunnel into the HTTP connection manager instead, so requests inside are routed by Host as usual.
//
// The registry is the allow-list. A host no ServiceEntry declares on that port falls to the
// catch-all: under ALLOW_ANY that is PassthroughCluster (the tunnel goes to host:port as asked);
// under REGISTRY_ONLY the CONNECT is refused with 403 before any tunnel exists, with an
// access-log (and audit) line naming the host, as Istio users expect from their egress policy.
//
// Replies: `200 Connection established` once routed (the upstream connect then happens in the TCP
// proxy: a connect failure closes the tunnel, as Envoy's tcp_proxy does); 400 for a malformed
// authority; 403 for an unregistered host under REGISTRY_ONLY.

import type http from 'node:http';
import type net from 'node:net';
import type { FilterChain, Snapshot, TcpProxy, TcpRoute } from '../../config/compile/snapshot';
import { findListener, findTcpRoute, findVirtualHost, pickCluster, selectChain, type ChainInput } from '../../config/compile/lookup';
import type { ProxyContext } from '../context';
import { proxyTcp, type L4Info, type TcpPlan } from '../l4/tcp-proxy';
import { recordFor } from '../observe/access-log-record';
import { DownstreamInfo, handOverHttp } from './http-connection';
import { parseRequestTarget, splitAuthority } from './request-target';
import { FLAG, type Flag } from '../errors';

const ESTABLISHED = 'HTTP/1.1 200 Connection established\r\n\r\n';
const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;

/** What the listener knows about the client. */
export interface ConnectClient {
  readonly remoteIp: string;
  readonly remoteAddress: string;
}

class ConnectChainQuery implements ChainInput {
  readonly isTls = true;
  readonly alpn = null;
  constructor(readonly sni: string, readonly dstIp: string) {}
}

/** How a CONNECT to host:port is served on this snapshot. */
export type ConnectDecision =
  | { readonly kind: 'tcp'; readonly filter: TcpProxy; readonly route: TcpRoute }
  | { readonly kind: 'http'; readonly chain: FilterChain }
  | { readonly kind: 'catch-all'; readonly cluster: string }
  | { readonly kind: 'refused' };

/** The route a tunnel to host:port takes, as a captured connection to it would (see the file comment). */
export function decideConnect(snapshot: Snapshot, host: string, port: number, remoteIp: string): ConnectDecision {
  const registryOnly = snapshot.catchAll.tcpCluster === 'BlackHoleCluster';
  const dstIp = IPV4.test(host) ? host : '0.0.0.0';
  const listener = findListener(snapshot, dstIp, port);
  const chain = listener === null ? null : selectChain(listener, new ConnectChainQuery(host, dstIp));
  if (chain !== null && chain.filter.kind === 'tcp') {
    const route = findTcpRoute(chain.filter.routes, { sni: host, dstIp, remoteIp });
    const catchAll = route === null || route.clusters.entries.every((e) => e.cluster === snapshot.catchAll.tcpCluster);
    if (!catchAll) return { kind: 'tcp', filter: chain.filter, route: route! };
  } else if (chain !== null && chain.filter.kind === 'http') {
    const vh = findVirtualHost(chain.filter.routeConfig, host + ':' + port);
    if (vh !== null && vh !== snapshot.catchAll.httpHost) return { kind: 'http', chain };
  }
  return registryOnly ? { kind: 'refused' } : { kind: 'catch-all', cluster: snapshot.catchAll.tcpCluster };
}

/** Serve one CONNECT from node:http's 'connect' event. */
export function serveConnect(ctx: ProxyContext, req: http.IncomingMessage, socket: net.Socket, head: Buffer, client: ConnectClient): void {
  socket.on('error', noop);
  const target = parseRequestTarget('CONNECT', req.url ?? '');
  if (target === null || target.authority === null) {
    refuse(ctx, socket, client, req.url ?? '', 400, 'Bad Request', FLAG.DOWNSTREAM_PROTOCOL_ERROR, 'http1.invalid_url');
    return;
  }
  const authority = target.authority;
  const { host, port } = splitAuthority(authority);
  const snapshot = ctx.snapshot;
  const decision = decideConnect(snapshot, host, port!, client.remoteIp);
  if (decision.kind === 'refused') {
    refuse(ctx, socket, client, authority, 403, 'Forbidden', FLAG.NO_ROUTE_FOUND, 'connect_host_not_in_registry');
    return;
  }
  const l4: L4Info = {
    originalDst: { address: host, port: port! },
    dstIp: IPV4.test(host) ? host : '0.0.0.0',
    localAddress: authority,
    remoteIp: client.remoteIp,
    remoteAddress: client.remoteAddress,
    sni: host,
    peerUriSan: null,
  };
  socket.write(ESTABLISHED);
  const early = head.length > 0 ? head : null;
  // The one TCP decision (as listener/tcp-plan.ts makes it for accepted connections): route, then
  // the weighted cluster pick; l4 executes it.
  if (decision.kind === 'catch-all') {
    proxyTcp(ctx, socket, early, planFor(ctx, decision.cluster, decision.cluster, null), l4);
    return;
  }
  if (decision.kind === 'tcp') {
    proxyTcp(ctx, socket, early, planFor(ctx, decision.filter.statPrefix, pickCluster(decision.route.clusters, Math.random()), decision.route.name), l4);
    return;
  }
  const f = decision.chain.filter;
  if (f.kind !== 'http') return;
  if (early !== null) socket.unshift(early);
  handOverHttp(ctx, socket, new DownstreamInfo({
    hcm: f,
    httpStats: ctx.httpStatsFor(f.statPrefix),
    originalDst: l4.originalDst,
    localAddress: authority,
    remoteIp: client.remoteIp,
    remoteAddress: client.remoteAddress,
    sni: null,
    peerUriSan: null,
    scheme: 'http',
    appendXff: false,
    absoluteForm: false,
  }));
  socket.resume();
}

function planFor(ctx: ProxyContext, statPrefix: string, clusterName: string, routeName: string | null): TcpPlan {
  return { statPrefix, routeName, clusterName, cluster: ctx.clusters.get(clusterName) };
}

function refuse(ctx: ProxyContext, socket: net.Socket, client: ConnectClient, authority: string, status: number, text: string, flags: Flag, details: string): void {
  const r = recordFor({ localAddress: authority, remoteAddress: client.remoteAddress, sni: null, peerUriSan: null });
  r.method = 'CONNECT';
  r.protocol = 'HTTP/1.1';
  r.authority = authority;
  r.responseCode = status;
  r.addFlag(flags);
  r.responseCodeDetails = details;
  const body = text;
  r.bytesSent = body.length;
  socket.end(`HTTP/1.1 ${status} ${text}\r\ncontent-length: ${body.length}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${body}`);
  ctx.accessLog.log(r);
  ctx.log.info({ authority, status, details }, 'CONNECT refused');
}

function noop(): void {}
