// The HTTP connection manager: HTTP/1.1 requests on a connection that a listener chain handed over
// (plain, TLS-terminated, or captured by the sidecar). Routing is done on the snapshot the connection
// started with: virtual host by authority, first matching route, then forward / redirect / direct
// response, with Envoy's local replies (404 NR, 503 NC/UH/UF, 502 block_all, 400 on codec errors)
// and one access-log line per request.
//
// node:http parses (llhttp, strict mode: it rejects CL+TE, duplicate Content-Length, obs-fold, bare LF
// in heads — the request smuggling cases of issue 6); undici forwards over pooled keep-alive
// connections. Issue 6 replaces this with a lighter head parser where it measurably pays off.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type net from 'node:net';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { HttpConnectionManager } from '../../config/compile/snapshot';
import { findRoute, findVirtualHost, pickCluster, type RequestView } from '../../config/compile/lookup';
import type { ProxyContext } from '../context';
import { ProxyErrorCode, rescueFor } from '../errors';
import { AccessLogRecord } from '../observe/access-log-record';
import type { HttpStats } from '../observe/stats';
import type { OriginalDestination } from '../upstream/cluster';
import { ForwardExchange } from './forward';
import { upstreamRequestHeaders } from './headers';
import { sendLocalReply, sendRescue } from './local-reply';

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
  readonly scheme: 'http' | 'https';
  /** Envoy's use_remote_address: true on gateways (append to X-Forwarded-For), false on sidecars. */
  readonly appendXff: boolean;
  /** Explicit proxy listener (HTTP_PROXY): requests carry absolute-form URIs. */
  readonly absoluteForm: boolean;

  constructor(init: Omit<DownstreamInfo, never>) {
    this.hcm = init.hcm;
    this.httpStats = init.httpStats;
    this.originalDst = init.originalDst;
    this.localAddress = init.localAddress;
    this.remoteIp = init.remoteIp;
    this.remoteAddress = init.remoteAddress;
    this.sni = init.sni;
    this.scheme = init.scheme;
    this.appendXff = init.appendXff;
    this.absoluteForm = init.absoluteForm;
  }
}

export const kDownstream = Symbol('sluice.downstream');
type TaggedSocket = net.Socket & { [kDownstream]?: DownstreamInfo };

class RequestViewImpl implements RequestView {
  readonly method: string;
  readonly path: string;
  readonly scheme: string;
  readonly authority: string;
  private readonly req: IncomingMessage;
  constructor(req: IncomingMessage, path: string, scheme: string, authority: string) {
    this.req = req;
    this.method = req.method ?? 'GET';
    this.path = path;
    this.scheme = scheme;
    this.authority = authority;
  }
  header(name: string): string | undefined {
    const v = this.req.headers[name];
    return Array.isArray(v) ? v.join(',') : v;
  }
}

/** One http.Server per proxy (it never listens itself): connections are emitted into it. */
export function createHttpServer(ctx: ProxyContext): http.Server {
  const server = http.createServer(
    {
      requireHostHeader: false, // we answer 400 ourselves, so the request is logged
      noDelay: true,
      keepAlive: true,
      maxHeaderSize: 60 * 1024, // Envoy's max_request_headers_kb default
      insecureHTTPParser: false,
    },
    (req, res) => onRequest(ctx, req, res),
  );
  server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => onClientError(ctx, err, socket));
  // Node's default timeouts are per-connection and coarse; Envoy's stream idle timeout is 5 min.
  server.headersTimeout = 60_000;
  server.requestTimeout = 0;
  return server;
}

export function handOverHttp(server: http.Server, socket: net.Socket, info: DownstreamInfo): void {
  (socket as TaggedSocket)[kDownstream] = info;
  info.httpStats.downstream_cx_total.inc();
  info.httpStats.downstream_cx_active.inc();
  info.httpStats.downstream_cx_http1_total.inc();
  socket.once('close', () => info.httpStats.downstream_cx_active.dec());
  server.emit('connection', socket);
}

function newRecord(info: DownstreamInfo): AccessLogRecord {
  const r = new AccessLogRecord(Date.now(), performance.now());
  r.downstreamLocalAddress = info.localAddress;
  r.downstreamRemoteAddress = info.remoteAddress;
  r.requestedServerName = info.sni;
  return r;
}

function onRequest(ctx: ProxyContext, req: IncomingMessage, res: ServerResponse): void {
  const info = (req.socket as TaggedSocket)[kDownstream];
  if (info === undefined) {
    res.destroy();
    return;
  }
  routeRequest(ctx, info, req, res);
}

/** Route and answer one request with the connection's (or, for the explicit proxy, the request's) info. */
export function routeRequest(ctx: ProxyContext, info: DownstreamInfo, req: IncomingMessage, res: ServerResponse): void {
  const stats = info.httpStats;
  stats.downstream_rq_total.inc();
  stats.downstream_rq_active.inc();
  const record = newRecord(info);
  record.method = req.method ?? null;
  record.protocol = 'HTTP/' + req.httpVersion;
  record.userAgent = headerValue(req, 'user-agent');

  let path = req.url ?? '/';
  let authority = req.headers.host ?? '';
  if (info.absoluteForm && !path.startsWith('/')) {
    try {
      const u = new URL(path);
      authority = u.host;
      path = u.pathname + u.search;
    } catch {
      // fall through: a malformed absolute URI is answered 400 below
      authority = '';
    }
  }
  record.path = path;
  record.authority = authority === '' ? null : authority;

  // x-request-id: generated when absent, as Envoy does; x-forwarded-for appended on gateways.
  let requestId = headerValue(req, 'x-request-id');
  const extra: string[] = [];
  if (requestId === null) {
    requestId = randomUUID();
    extra.push('x-request-id', requestId);
  }
  record.requestId = requestId;
  let xff = headerValue(req, 'x-forwarded-for');
  if (info.appendXff) {
    xff = xff === null ? info.remoteIp : xff + ', ' + info.remoteIp;
    extra.push('x-forwarded-for', xff);
  }
  record.xForwardedFor = xff;
  if (req.headers['x-forwarded-proto'] === undefined) extra.push('x-forwarded-proto', info.scheme);

  let completed = false;
  const done = (r: AccessLogRecord): void => {
    if (completed) return;
    completed = true;
    r.durationMs = Math.round(performance.now() - r.startHr);
    stats.downstream_rq_active.dec();
    stats.downstream_rq_completed.inc();
    if (r.responseCode > 0) stats.responseCode(r.responseCode);
    stats.downstream_rq_time.record(r.durationMs);
    ctx.accessLog.log(r);
  };
  const doneOnFinish = (): void => {
    res.once('finish', () => done(record));
    res.once('close', () => done(record));
  };

  if (authority === '') {
    doneOnFinish();
    sendLocalReply(res, record, 400, 'Bad Request', 'DPE', 'missing_host_header', { connection: 'close' });
    return;
  }
  const hcm = info.hcm;
  if (hcm.httpsRedirect) {
    doneOnFinish();
    sendLocalReply(res, record, 301, '', '-', 'direct_response', { location: 'https://' + stripPort(authority) + path });
    return;
  }
  const vh = findVirtualHost(hcm.routeConfig, authority);
  const view = new RequestViewImpl(req, path, info.scheme, authority);
  const route = vh === null ? null : findRoute(vh, view);
  if (route === null) {
    stats.no_route.inc();
    doneOnFinish();
    sendRescue(res, record, rescueFor(ProxyErrorCode.NO_ROUTE));
    drainBody(req);
    return;
  }
  record.routeName = route.name;
  const action = route.action;
  if (action.kind === 'direct') {
    doneOnFinish();
    sendLocalReply(res, record, action.status, action.body, '-', 'direct_response');
    drainBody(req);
    return;
  }
  if (action.kind === 'redirect') {
    doneOnFinish();
    const location = (action.scheme ?? info.scheme) + '://' + (action.authority ?? stripPort(authority)) + (action.port !== null ? ':' + action.port : '') + (action.path ?? path);
    sendLocalReply(res, record, action.status, '', '-', 'direct_response', { location });
    drainBody(req);
    return;
  }
  const clusterName = pickCluster(action.clusters, Math.random());
  record.upstreamCluster = clusterName;
  const cluster = ctx.clusters.get(clusterName);
  if (cluster === undefined) {
    stats.no_cluster.inc();
    doneOnFinish();
    sendRescue(res, record, rescueFor(ProxyErrorCode.NO_CLUSTER));
    drainBody(req);
    return;
  }
  let upstreamPath = path;
  const rw = action.rewrite;
  if (rw !== null) {
    if (rw.uri !== null) upstreamPath = rw.uri;
    else if (rw.uriPrefix !== null && route.match.uri !== null && route.match.uri.kind === 'prefix') upstreamPath = rw.uriPrefix + path.slice(route.match.uri.value.length);
  }
  const headers = upstreamRequestHeaders(req.rawHeaders, headerValue(req, 'connection') ?? undefined, action.requestHeaders);
  if (rw !== null && rw.authority !== null) replaceHeader(headers, 'host', rw.authority);
  if (upstreamPath !== path) extra.push('x-envoy-original-path', path);
  for (let i = 0; i < extra.length; i += 2) replaceHeader(headers, extra[i]!, extra[i + 1]!);
  const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');

  const exchange = new ForwardExchange({
    req, res, record, cluster, action, httpStats: stats, path: upstreamPath, headers, hasBody,
    pickCtx: { sourceIp: info.remoteIp, hashValue: null },
    originalDst: info.originalDst,
    sni: stripPort(authority),
    onDone: done,
  });
  exchange.start();
}

function onClientError(ctx: ProxyContext, err: NodeJS.ErrnoException, socket: net.Socket): void {
  const info = (socket as TaggedSocket)[kDownstream];
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || !socket.writable) {
    socket.destroy();
    return;
  }
  // A malformed request: Envoy answers 400 (codec error), logs it, and closes the connection.
  const record = info === undefined ? new AccessLogRecord(Date.now(), performance.now()) : newRecord(info);
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  record.responseCode = tooLarge ? 431 : 400;
  record.addFlag('DPE');
  record.responseCodeDetails = tooLarge ? 'http1.headers_too_large' : 'http1.codec_error';
  const body = tooLarge ? 'Request Header Fields Too Large' : 'Bad Request';
  record.bytesSent = body.length;
  if (info !== undefined) {
    info.httpStats.downstream_cx_protocol_error.inc();
    info.httpStats.downstream_rq_total.inc();
    info.httpStats.responseCode(record.responseCode);
  }
  socket.end(`HTTP/1.1 ${record.responseCode} ${body}\r\ncontent-length: ${body.length}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${body}`);
  ctx.accessLog.log(record);
  ctx.log.debug({ err: err.code, reason: err.message }, 'downstream protocol error');
}

function headerValue(req: IncomingMessage, name: string): string | null {
  const v = req.headers[name];
  if (v === undefined) return null;
  return Array.isArray(v) ? v.join(', ') : v;
}

function replaceHeader(flat: string[], name: string, value: string): void {
  for (let i = 0; i < flat.length; i += 2) {
    if (flat[i]!.toLowerCase() === name) {
      flat[i + 1] = value;
      return;
    }
  }
  flat.push(name, value);
}

function stripPort(authority: string): string {
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    return end < 0 ? authority : authority.slice(0, end + 1);
  }
  const i = authority.lastIndexOf(':');
  return i < 0 ? authority : authority.slice(0, i);
}

/** Read and discard a request body we answered locally, so keep-alive can continue. */
function drainBody(req: IncomingMessage): void {
  if (!req.complete) req.resume();
}
