// The HTTP connection manager: HTTP/1.1 requests on a connection that a listener chain handed over
// (plain, TLS-terminated, or captured by the sidecar). Routing is done on the snapshot the connection
// started with: virtual host by authority, first matching route, then forward / redirect / direct
// response, with Envoy's local replies (404 NR, 503 NC/UH/UF, 502 block_all, 400/431 on codec
// errors) and one access-log line per request.
//
// Connections are served by the fast path (h1-server.ts: strict head parser, exact body framing —
// the request-smuggling shapes are refused there) and forwarded over pooled keep-alive
// upstream connections (h1-upstream.ts). The explicit HTTP proxy listener still hands in node:http
// requests; node-stream.ts adapts them to the same DownstreamStream, so routing exists once.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type net from 'node:net';
import type tls from 'node:tls';
import { randomUUID } from 'node:crypto';
import type { HttpConnectionManager } from '../../config/compile/snapshot';
import { findRoute, findVirtualHost, pickDestination, type RequestView } from '../../config/compile/lookup';
import { rewritePath } from '../../config/compile/route-policies';
import type { ProxyContext } from '../context';
import { FLAG, ProxyErrorCode, rescueFor } from '../errors';
import { recordFor } from '../observe/access-log-record';
import { hashValueFor } from './hash-key';
import type { HttpStats } from '../observe/stats';
import type { OriginalDestination } from '../upstream/cluster';
import { completeRequest } from './complete';
import { corsDecision } from './cors';
import { drawFault, faultStatsFor, sendFaultAbort } from './fault';
import { ForwardExchange } from './forward';
import { startMirrors, type ShadowRequest } from './mirror';
import { H, type RequestHead } from './h1-head';
import { H1Connection, type H1Hooks, type H1Stream } from './h1-server';
import { serveH2, type H2Stream } from './h2-server';
import { upstreamHeaderLines } from './headers';
import { sendLocalReply, sendRescue } from './local-reply';
import { NodeStream } from './node-stream';
import { TargetForm, parseRequestTarget } from './request-target';
import { grpcTimeoutMs } from './grpc';
import { UpgradeOffer, WEBSOCKET_REQUEST_LINES, upgradeOffer } from './upgrade';
import { appendedXfcc } from './xfcc';
import type { DownstreamStream } from './stream';
import { allowedByRbac, principalOf } from './rbac';

/** Per downstream connection: what the listener decided, attached to the socket. */
export class DownstreamInfo {
  readonly hcm: HttpConnectionManager;
  readonly httpStats: HttpStats;
  readonly originalDst: OriginalDestination | null;
  /** DOWNSTREAM_LOCAL_ADDRESS: the original destination for captured connections. */
  readonly localAddress: string;
  readonly remoteIp: string;
  readonly remoteAddress: string;
  readonly sni: string | null;
  /** DOWNSTREAM_PEER_URI_SAN: the client certificate's URI SAN on terminated mTLS. */
  readonly peerUriSan: string | null;
  readonly scheme: 'http' | 'https';
  /** Envoy's use_remote_address: true on gateways (append to X-Forwarded-For), false on sidecars. */
  readonly appendXff: boolean;
  /** Explicit proxy listener (HTTP_PROXY): requests carry absolute-form URIs and CONNECT is served. */
  readonly absoluteForm: boolean;
  /** Sidecar inbound (l7/xfcc.ts): this hop's x-forwarded-client-cert element; null = no client certificate; absent = not set. */
  readonly xfcc?: string | null;

  constructor(init: Omit<DownstreamInfo, never>) {
    this.hcm = init.hcm;
    this.httpStats = init.httpStats;
    this.originalDst = init.originalDst;
    this.localAddress = init.localAddress;
    this.remoteIp = init.remoteIp;
    this.remoteAddress = init.remoteAddress;
    this.sni = init.sni;
    this.peerUriSan = init.peerUriSan;
    this.scheme = init.scheme;
    this.appendXff = init.appendXff;
    this.absoluteForm = init.absoluteForm;
    this.xfcc = init.xfcc;
  }
}

/** What an H1Connection needs to route its requests: one per downstream connection. */
class ConnectionOwner {
  readonly ctx: ProxyContext;
  readonly info: DownstreamInfo;
  private http1Counted = false;
  constructor(ctx: ProxyContext, info: DownstreamInfo) {
    this.ctx = ctx;
    this.info = info;
  }
  /** downstream_cx_http1_total once the first bytes showed HTTP/1.1 rather than the h2 preface. */
  countHttp1(): void {
    if (this.http1Counted) return;
    this.http1Counted = true;
    this.info.httpStats.downstream_cx_http1_total.inc();
  }
}

const HOOKS: H1Hooks<ConnectionOwner> = {
  request(owner: ConnectionOwner, stream: H1Stream): void {
    owner.countHttp1();
    routeStream(owner.ctx, owner.info, stream);
  },
  protocolError(owner: ConnectionOwner, status: 400 | 431, reply: (text: string) => void): void {
    owner.countHttp1();
    onProtocolError(owner.ctx, owner.info, status, reply);
  },
  headersTimeout(owner: ConnectionOwner, reply: (text: string) => void): void {
    owner.countHttp1();
    onHeadersTimeout(owner.ctx, owner.info, reply);
  },
  closed(owner: ConnectionOwner): void {
    owner.info.httpStats.downstream_cx_active.dec();
  },
  draining(owner: ConnectionOwner): boolean {
    return owner.ctx.draining;
  },
  http2(owner: ConnectionOwner, socket: net.Socket, head: Buffer): void {
    // h2c with prior knowledge (the codec is known from the first bytes, as Envoy's AUTO knows it).
    owner.info.httpStats.downstream_cx_http2_total.inc();
    serveH2(socket, head, owner, routeH2);
  },
};

function routeH2(owner: ConnectionOwner, stream: H2Stream): void {
  routeStream(owner.ctx, owner.info, stream);
}

/** An accepted connection whose chain is HTTP: served by sluice's own HTTP/1.1 or HTTP/2 code (no node:http server). */
export function handOverHttp(ctx: ProxyContext, socket: net.Socket, info: DownstreamInfo): void {
  info.httpStats.downstream_cx_total.inc();
  info.httpStats.downstream_cx_active.inc();
  const owner = new ConnectionOwner(ctx, info);
  if ((socket as tls.TLSSocket).alpnProtocol === 'h2') {
    // ALPN chose h2 in the TLS handshake (tls/terminate.ts offers it on HTTP chains).
    info.httpStats.downstream_cx_http2_total.inc();
    socket.once('close', () => info.httpStats.downstream_cx_active.dec());
    serveH2(socket, null, owner, routeH2);
    return;
  }
  new H1Connection(socket, owner, HOOKS, ctx.timeouts.requestHeadersMs);
}


class RequestViewImpl implements RequestView {
  readonly method: string;
  readonly path: string;
  readonly scheme: string;
  readonly authority: string;
  private readonly head: RequestHead;
  constructor(head: RequestHead, path: string, scheme: string, authority: string) {
    this.head = head;
    this.method = head.method;
    this.path = path;
    this.scheme = scheme;
    this.authority = authority;
  }
  header(name: string): string | undefined {
    const raw = this.head.raw;
    let v: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.length === name.length && raw[i]!.toLowerCase() === name) v = v === undefined ? raw[i + 1]! : v + ',' + raw[i + 1]!;
    }
    return v;
  }
}

/** Route a node:http request (the explicit proxy listener) exactly as a fast-path one. */
export function routeRequest(ctx: ProxyContext, info: DownstreamInfo, req: IncomingMessage, res: ServerResponse): void {
  routeStream(ctx, info, new NodeStream(req, res, ctx));
}

const PROTOCOLS = ['HTTP/1.0', 'HTTP/1.1'];

/** Route and answer one request with the connection's (or, for the explicit proxy, the request's) info. */
export function routeStream(ctx: ProxyContext, info: DownstreamInfo, stream: DownstreamStream): void {
  const head = stream.head;
  const stats = info.httpStats;
  stats.downstream_rq_total.inc();
  stats.downstream_rq_active.inc();
  const record = recordFor(info);
  record.method = head.method;
  record.protocol = stream.protocol ?? PROTOCOLS[head.versionMinor] ?? 'HTTP/1.1';
  if (stream.protocol === null) stats.downstream_rq_http1_total.inc();
  else stats.downstream_rq_http2_total.inc();
  record.userAgent = head.userAgent;

  const target = parseRequestTarget(head.method, head.target);
  const path = target === null ? head.target : target.path;
  // RFC 9112 §7.2: an absolute-form target's authority replaces Host (which is then ignored).
  const authority = target !== null && target.authority !== null ? target.authority : head.host ?? '';
  record.path = path;
  record.authority = authority === '' ? null : authority;

  // x-request-id: generated when absent, as Envoy does; x-forwarded-for appended on gateways.
  let requestId = head.requestId;
  const generatedId = requestId === null;
  if (requestId === null) requestId = randomUUID();
  record.requestId = requestId;
  let xff = head.xff;
  if (info.appendXff) xff = xff === null ? info.remoteIp : xff + ', ' + info.remoteIp;
  record.xForwardedFor = xff;

  if (target === null || authority === '') {
    stream.closeAfter();
    sendLocalReply(stream, record, 400, 'Bad Request', FLAG.DOWNSTREAM_PROTOCOL_ERROR, target === null ? 'http1.invalid_url' : 'missing_host_header');
    completeRequest(ctx, stats, record);
    return;
  }
  if (target.form === TargetForm.AUTHORITY) {
    // CONNECT outside the explicit proxy listener (which takes it before routing): Envoy matches
    // CONNECT only against connect_matcher routes, and Istio generates none, so 404 NR.
    stats.no_route.inc();
    stream.closeAfter();
    sendRescue(stream, record, rescueFor(ProxyErrorCode.NO_ROUTE));
    completeRequest(ctx, stats, record);
    return;
  }
  // Envoy's RBAC filter runs before the router (proxy/l7/rbac.ts); nothing is built when no policy applies.
  const policies = ctx.snapshot.authorization;
  if (policies !== undefined && policies.length > 0 && !allowedByRbac(policies, {
    principal: principalOf(info.peerUriSan), sourceIp: info.remoteIp, host: stripPort(authority), sni: info.sni,
    port: portOfAddress(info.localAddress), method: head.method, path,
  }, stats, stream, record, ctx.policyMode)) {
    completeRequest(ctx, stats, record);
    return;
  }
  const hcm = info.hcm;
  if (hcm.httpsRedirect) {
    sendLocalReply(stream, record, 301, '', '-', 'direct_response', ['location', 'https://' + stripPort(authority) + path]);
    completeRequest(ctx, stats, record);
    return;
  }
  const vh = findVirtualHost(hcm.routeConfig, authority);
  const view = new RequestViewImpl(head, path, info.scheme, authority);
  const route = vh === null ? null : findRoute(vh, view);
  if (route === null) {
    stats.no_route.inc();
    sendRescue(stream, record, rescueFor(ProxyErrorCode.NO_ROUTE));
    completeRequest(ctx, stats, record);
    return;
  }
  record.routeName = route.name;
  record.routeSource = route.source;
  const action = route.action;
  if (action.kind === 'direct') {
    sendLocalReply(stream, record, action.status, action.body, '-', 'direct_response');
    completeRequest(ctx, stats, record);
    return;
  }
  if (action.kind === 'redirect') {
    const location = (action.scheme ?? info.scheme) + '://' + (action.authority ?? stripPort(authority)) + (action.port !== null ? ':' + action.port : '') + (action.path ?? path);
    sendLocalReply(stream, record, action.status, '', '-', 'direct_response', ['location', location]);
    completeRequest(ctx, stats, record);
    return;
  }
  const offer = upgradeOffer(head);
  if (offer === UpgradeOffer.REFUSED) {
    stream.closeAfter();
    sendLocalReply(stream, record, 403, '', '-', 'upgrade_failed');
    completeRequest(ctx, stats, record);
    return;
  }
  // Istio's HTTP filter order: CORS, fault, router (which mirrors and forwards).
  let corsHeaders: readonly string[] | null = null;
  if (action.cors !== undefined && action.cors !== null) {
    const d = corsDecision(action.cors, head.method, view.header('origin'), view.header('access-control-request-method'));
    if (d.kind === 'preflight') {
      stream.discardBody();
      sendLocalReply(stream, record, 200, '', '-', 'cors_response', d.headers);
      completeRequest(ctx, stats, record);
      return;
    }
    if (d.kind === 'actual') corsHeaders = d.headers;
  }
  const fault = action.fault !== undefined && action.fault !== null ? drawFault(action.fault) : null;
  const faultStats = fault === null ? null : faultStatsFor(ctx.stats, hcm.statPrefix);
  if (fault !== null && fault.delayMs === 0 && fault.abort !== null) {
    faultStats!.aborts_injected.inc();
    sendFaultAbort(stream, record, fault.abort);
    completeRequest(ctx, stats, record);
    return;
  }
  const entry = pickDestination(action.clusters, Math.random());
  const clusterName = entry === null ? '' : entry.cluster;
  record.upstreamCluster = clusterName;
  const cluster = ctx.clusters.get(clusterName);
  if (cluster === undefined) {
    stats.no_cluster.inc();
    sendRescue(stream, record, rescueFor(ProxyErrorCode.NO_CLUSTER));
    completeRequest(ctx, stats, record);
    return;
  }
  const rw = action.rewrite;
  const upstreamPath = rw !== null && rw.path !== null ? rewritePath(rw.path, path) : path;
  // Forwarded in origin form: an absolute-form target's authority becomes the upstream Host.
  const newHost = rw !== null && rw.authority !== null ? rw.authority : target.form === TargetForm.ABSOLUTE ? authority : null;
  const requestOps = entry!.requestHeaders ?? action.requestHeaders;
  // Host goes first (as Envoy's codec writes :authority); the rest as they came, then what the proxy adds.
  const requestLine = head.method + ' ' + upstreamPath + ' HTTP/1.1\r\n';
  let rest = upstreamHeaderLines(head, requestOps, info.appendXff ? H.X_FORWARDED_FOR : -1, H.HOST);
  if (generatedId) rest += 'x-request-id: ' + requestId + '\r\n';
  if (info.appendXff) rest += 'x-forwarded-for: ' + xff + '\r\n';
  if (head.xfp === null) rest += 'x-forwarded-proto: ' + info.scheme + '\r\n';
  if (upstreamPath !== path) rest += 'x-envoy-original-path: ' + path + '\r\n';
  if (info.xfcc != null) rest += 'x-forwarded-client-cert: ' + appendedXfcc(head, info.xfcc) + '\r\n';
  const upstreamAuthority = newHost ?? (head.host ?? authority);
  const upgrade = offer === UpgradeOffer.WEBSOCKET && stream.canTakeOver;
  const text = requestLine + 'host: ' + upstreamAuthority + '\r\n' + rest + (upgrade ? WEBSOCKET_REQUEST_LINES : '');
  const mirrors = action.mirrors;
  // An upgrade is not mirrored (a shadow cannot take over a connection).
  const startShadows = mirrors === undefined || mirrors.length === 0 || upgrade ? null : (): ShadowRequest[] | null =>
    startMirrors(ctx, mirrors, upstreamAuthority, stripPort(upstreamAuthority), (h) => requestLine + 'host: ' + h + '\r\n' + rest, head, stream.hasBody, action.timeoutMs);

  new ForwardExchange({
    ctx, stream, record, cluster, action, httpStats: stats, headText: text,
    pickCtx: { sourceIp: info.remoteIp, hashValue: hashValueFor(cluster.config.lb, view) },
    originalDst: info.originalDst,
    // Only a TLS-originating cluster uses it (its pools and handshakes are per SNI).
    sni: cluster.originatesTls ? stripPort(authority) : null,
    upgrade,
    responseHeaders: entry!.responseHeaders ?? action.responseHeaders,
    fault, faultStats, corsHeaders, startShadows,
    timeoutMs: grpcTimeoutMs(head.raw) ?? undefined,
  }).start();
}

/** A malformed (400) or oversized (431) head: Envoy answers, logs DPE, and closes the connection. */
function onProtocolError(ctx: ProxyContext, info: DownstreamInfo, status: 400 | 431, reply: (text: string) => void): void {
  const record = recordFor(info);
  const tooLarge = status === 431;
  record.responseCode = status;
  record.addFlag(FLAG.DOWNSTREAM_PROTOCOL_ERROR);
  record.responseCodeDetails = tooLarge ? 'http1.headers_too_large' : 'http1.codec_error';
  const body = tooLarge ? 'Request Header Fields Too Large' : 'Bad Request';
  record.bytesSent = body.length;
  info.httpStats.downstream_cx_protocol_error.inc();
  info.httpStats.downstream_rq_total.inc();
  info.httpStats.responseCode(status);
  reply(`HTTP/1.1 ${status} ${body}\r\ncontent-length: ${body.length}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${body}`);
  ctx.accessLog.log(record);
  ctx.log.debug({ status }, 'downstream protocol error');
}

/**
 * request_headers_timeout expired with a head begun and unfinished: Envoy answers 408 with details
 * `request_header_timeout`, counts http.<prefix>.downstream_rq_header_timeout and closes.
 */
function onHeadersTimeout(ctx: ProxyContext, info: DownstreamInfo, reply: (text: string) => void): void {
  const record = recordFor(info);
  const body = 'request header timeout';
  record.responseCode = 408;
  record.responseCodeDetails = 'request_header_timeout';
  record.bytesSent = body.length;
  info.httpStats.downstream_rq_header_timeout.inc();
  info.httpStats.downstream_rq_total.inc();
  info.httpStats.responseCode(408);
  reply(`HTTP/1.1 408 Request Timeout\r\ncontent-length: ${body.length}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${body}`);
  ctx.accessLog.log(record);
  ctx.log.debug({ remote: info.remoteAddress }, 'request headers timeout');
}

function stripPort(authority: string): string {
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    return end < 0 ? authority : authority.slice(0, end + 1);
  }
  const i = authority.lastIndexOf(':');
  return i < 0 ? authority : authority.slice(0, i);
}

/** The port of an `ip:port` / `[v6]:port` address; 0 when there is none. */
function portOfAddress(address: string): number {
  const n = Number(address.slice(address.lastIndexOf(':') + 1));
  return Number.isInteger(n) ? n : 0;
}
