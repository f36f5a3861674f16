// HTTP/2 to the upstream (clusters whose `http2` the compiler set: port protocol HTTP2/GRPC/GRPC-WEB,
// a `grpc-`/`http2-` port name, or h2UpgradePolicy UPGRADE): per (cluster, host, SNI) one pooled
// connection that multiplexes every request as a stream, as Envoy's HTTP/2 pool does. The
// connection is opened with the cluster's own connect (upstream/connect.ts: TCP, or TLS with ALPN
// h2, and Envoy's upstream_cx_* accounting), then node:http2 speaks h2 over it (prior knowledge on
// a plain port). upstream_cx_http2_total counts it.
//
// The request arrives as the HTTP/1.1 head the forwarder builds for every upstream (forward.ts);
// it is turned into HTTP/2 fields here: `host` becomes :authority, and the hop-by-hop and framing
// lines (Connection, Transfer-Encoding, Upgrade, Keep-Alive) are dropped as RFC 9113 §8.2.2 wants.
// The response comes back to the same UpstreamHandler callbacks as an HTTP/1.1 one, plus its
// trailers (gRPC's grpc-status, grpc-message) through onResponseTrailers.
//
// Limits, from connectionPool.http as Istio maps them: http2MaxRequests is the request circuit
// breaker (Envoy max_requests; over it: UO, upstream_rq_pending_overflow), maxRequestsPerConnection
// ends a connection after that many streams (GOAWAY once they finish; the next request opens a new
// one). Requests that arrive while the connection is being opened wait (upstream_rq_pending_*).

import http2 from 'node:http2';
import type net from 'node:net';
import { ISTIO_MAX_UINT32 } from '../../config/compile/snapshot';
import { ProxyError, ProxyErrorCode } from '../errors';
import type { StatsStore } from '../observe/stats';
import type { UpstreamCluster } from '../upstream/cluster';
import type { UpstreamHost } from '../upstream/host';
import { H, ResponseHead, headerId } from './h1-head';
import type { PooledRequest, RequestPool, UpstreamHandler } from './h1-upstream';
import { pendingStatsFor, type PendingStats } from './pending-stats';

const C = http2.constants;
/** Request header lines an HTTP/2 request must not carry (RFC 9113 §8.2.2), lower-cased. */
const NOT_H2 = new Set(['connection', 'transfer-encoding', 'upgrade', 'keep-alive', 'proxy-connection', 'host', 'content-length']);

/** One request on a pooled HTTP/2 connection: the methods forward.ts calls on any upstream connection. */
export class H2UpstreamStream implements PooledRequest {
  readonly pool: H2Pool;
  private handler: UpstreamHandler | null = null;
  private req: http2.ClientHttp2Stream | null = null;
  private isHead = false;
  private ended = false;
  private session: http2.ClientHttp2Session | null = null;

  constructor(pool: H2Pool) {
    this.pool = pool;
  }

  begin(handler: UpstreamHandler, headText: string, isHeadMethod: boolean): void {
    this.handler = handler;
    this.isHead = isHeadMethod;
    const session = this.pool.session;
    if (session === null || session.destroyed || session.closed) {
      this.fail(new ProxyError(ProxyErrorCode.UPSTREAM_RESET, 'upstream connection closed', { transportReason: 'connection_termination' }), true);
      return;
    }
    this.session = session;
    this.pool.streamStarted(session);
    const { headers, endStream } = h2Request(headText);
    let req: http2.ClientHttp2Stream;
    try {
      req = session.request(headers, { endStream: false });
    } catch (e) {
      this.fail(new ProxyError(ProxyErrorCode.UPSTREAM_RESET, (e as Error).message, { transportReason: 'protocol_error' }), true);
      return;
    }
    void endStream;
    this.req = req;
    req.on('response', this.onResponse.bind(this));
    req.on('data', this.onData.bind(this));
    req.on('end', this.onEnd.bind(this));
    req.on('trailers', this.onTrailers.bind(this));
    req.on('close', this.onClose.bind(this));
    req.on('error', noop);
    req.on('drain', this.onDrain.bind(this));
  }

  writeBody(chunk: Buffer): boolean {
    const req = this.req;
    if (req === null || req.destroyed) return true;
    // A copy: the bytes are borrowed from the downstream's read, and nghttp2 sends queued DATA later.
    return req.write(Buffer.from(chunk));
  }

  endRequest(): void {
    const req = this.req;
    if (req !== null && !req.destroyed) req.end();
  }

  pause(): void {
    this.req?.pause();
  }
  resume(): void {
    this.req?.resume();
  }

  /** Abandon the exchange (timeout, downstream gone): the stream is reset, the connection stays. */
  abort(): void {
    this.handler = null;
    const req = this.req;
    this.req = null;
    if (req !== null && !req.destroyed) req.close(C.NGHTTP2_CANCEL);
    if (!this.ended) {
      this.ended = true;
      this.pool.streamDone(this.session);
    }
  }

  private onResponse(headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number): void {
    const h = this.handler;
    if (h === null) return;
    const head = responseHeadFromH2(headers, (flags & C.NGHTTP2_FLAG_END_STREAM) !== 0 || this.isHead);
    h.onResponseHead(head);
  }
  private onData(chunk: Buffer): void {
    this.handler?.onResponseData(chunk);
  }
  private onTrailers(trailers: http2.IncomingHttpHeaders): void {
    const out: string[] = [];
    for (const [k, v] of Object.entries(trailers)) if (typeof v === 'string') out.push(k, v);
    this.handler?.onResponseTrailers?.(out);
  }
  private onEnd(): void {
    if (this.ended) return;
    this.ended = true;
    const h = this.handler;
    this.handler = null;
    this.pool.streamDone(this.session);
    h?.onResponseEnd();
  }
  private onClose(): void {
    const h = this.handler;
    if (h === null || this.ended) return;
    this.handler = null;
    this.ended = true;
    this.pool.streamDone(this.session);
    const code = this.req?.rstCode ?? C.NGHTTP2_INTERNAL_ERROR;
    // REFUSED_STREAM: the upstream did not process it (RFC 9113 §8.7), so it may be retried.
    const refused = code === C.NGHTTP2_REFUSED_STREAM;
    h.onResponseError(new ProxyError(ProxyErrorCode.UPSTREAM_RESET, 'upstream reset the stream: ' + code, { transportReason: refused ? 'refused_stream_reset' : 'remote_reset' }), refused);
  }
  private onDrain(): void {
    this.handler?.onUpstreamDrain();
  }
  private fail(err: ProxyError, retryable: boolean): void {
    const h = this.handler;
    this.handler = null;
    h?.onResponseError(err, retryable);
  }
}

function noop(): void {}

/** The forwarder's HTTP/1.1 request head as HTTP/2 fields. */
function h2Request(text: string): { headers: http2.OutgoingHttpHeaders; endStream: boolean } {
  const lines = text.split('\r\n');
  const first = lines[0]!;
  const sp1 = first.indexOf(' ');
  const sp2 = first.lastIndexOf(' ');
  const headers: http2.OutgoingHttpHeaders = { ':method': first.slice(0, sp1), ':path': first.slice(sp1 + 1, sp2), ':scheme': 'http' };
  let contentLength: string | null = null;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const c = line.indexOf(':');
    const name = line.slice(0, c).toLowerCase();
    const value = line.slice(c + 1).trim();
    if (name === 'host') headers[':authority'] = value;
    else if (name === 'content-length') contentLength = value;
    else if (name === 'te') {
      if (value.toLowerCase() === 'trailers') headers['te'] = 'trailers'; // the one TE value h2 allows
    } else if (!NOT_H2.has(name)) {
      const prev = headers[name];
      headers[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [String(prev), value];
    }
  }
  if (contentLength !== null) headers['content-length'] = contentLength;
  // gRPC requires `te: trailers` (gRPC over HTTP/2); the HTTP/1.1 head dropped TE as hop-by-hop.
  if (String(headers['content-type'] ?? '').startsWith('application/grpc')) headers['te'] = 'trailers';
  return { headers, endStream: contentLength === '0' };
}

/** An HTTP/2 response as the ResponseHead the forwarder reads (framing: a known length, else "until the stream ends"). */
function responseHeadFromH2(headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, endStream: boolean): ResponseHead {
  const h = new ResponseHead();
  h.status = Number(headers[':status'] ?? 502);
  for (const [k, v] of Object.entries(headers)) {
    if (k.charCodeAt(0) === 0x3a || v === undefined) continue;
    const values = Array.isArray(v) ? v : [String(v)];
    for (const value of values) {
      const id = headerId(k);
      h.raw.push(k, value);
      h.ids.push(id);
      if (id === H.CONTENT_LENGTH) h.contentLength = Number(value);
    }
  }
  if (endStream) h.contentLength = 0;
  // No content-length: the body ends with the stream (END_STREAM), which the HTTP/1.1 downstream
  // writes chunked, the HTTP/2 one as it is.
  else if (h.contentLength < 0) h.chunked = true;
  return h;
}

/** One HTTP/2 connection (or none yet) to a host, multiplexing the requests. */
export class H2Pool implements RequestPool {
  readonly cluster: UpstreamCluster;
  readonly host: UpstreamHost;
  readonly sni: string | null;
  session: http2.ClientHttp2Session | null = null;
  private connecting = false;
  private readonly pending: PendingStats;
  private readonly waiting: UpstreamHandler[] = [];
  /** streams started on the current connection (maxRequestsPerConnection) */
  private streams = 0;

  constructor(cluster: UpstreamCluster, host: UpstreamHost, sni: string | null, pending: PendingStats) {
    this.cluster = cluster;
    this.host = host;
    this.sni = sni;
    this.pending = pending;
  }

  acquire(h: UpstreamHandler): void {
    const s = this.session;
    if (s !== null && !s.destroyed && !s.closed && this.waiting.length === 0) {
      this.attach(h);
      return;
    }
    const ps = this.pending;
    if (ps.upstream_rq_pending_active.value >= this.cluster.config.circuitBreakers.maxPendingRequests) {
      this.cluster.stats.upstream_rq_pending_overflow.inc();
      h.onUpstreamConnectError(new ProxyError(ProxyErrorCode.UPSTREAM_OVERFLOW, `${this.cluster.name}: pending requests limit reached`));
      return;
    }
    this.waiting.push(h);
    ps.upstream_rq_pending_total.inc();
    ps.upstream_rq_pending_active.inc();
    if (!this.connecting) this.open();
  }

  cancel(h: UpstreamHandler): void {
    const i = this.waiting.indexOf(h);
    if (i < 0) return;
    this.waiting.splice(i, 1);
    this.pending.upstream_rq_pending_active.dec();
    this.pending.upstream_rq_cancelled.inc();
  }

  /** A handler that gave up while its stream was being set up hands it back: nothing to keep. */
  release(c: PooledRequest): void {
    c.abort();
  }

  /** Open streams per connection: a retired connection (maxRequestsPerConnection) closes after its last. */
  private readonly active = new Map<http2.ClientHttp2Session, number>();

  streamStarted(session: http2.ClientHttp2Session): void {
    this.active.set(session, (this.active.get(session) ?? 0) + 1);
  }

  streamDone(session: http2.ClientHttp2Session | null): void {
    if (session === null) return;
    const n = (this.active.get(session) ?? 1) - 1;
    if (n > 0) {
      this.active.set(session, n);
      return;
    }
    this.active.delete(session);
    // GOAWAY only once its streams are done: Node resets a stream still being set up on a closing session.
    if (session !== this.session && !session.closed) session.close();
  }

  private attach(h: UpstreamHandler): void {
    const cluster = this.cluster;
    const max = cluster.config.circuitBreakers.maxRequests;
    if (max < ISTIO_MAX_UINT32 && cluster.stats.upstream_rq_active.value >= max) {
      cluster.stats.upstream_rq_pending_overflow.inc();
      h.onUpstreamConnectError(new ProxyError(ProxyErrorCode.UPSTREAM_OVERFLOW, `${cluster.name}: http2MaxRequests ${max} reached`));
      return;
    }
    const perConnection = cluster.config.maxRequestsPerConnection;
    this.streams++;
    const stream = new H2UpstreamStream(this);
    h.onUpstreamReady(stream);
    if (perConnection > 0 && this.streams >= perConnection && this.session !== null) {
      // Envoy drains a connection that served max_requests_per_connection streams: no new stream
      // goes to it, and it closes (GOAWAY) after its last one (streamDone).
      this.session = null;
    }
  }

  private open(): void {
    this.connecting = true;
    this.cluster.connect(this.host, this.sni, (err, socket) => this.connected(err, socket));
  }

  private connected(err: ProxyError | null, socket: net.Socket | null): void {
    this.connecting = false;
    if (err !== null || socket === null) {
      const failed = this.waiting.splice(0);
      for (const h of failed) {
        this.pending.upstream_rq_pending_active.dec();
        this.pending.upstream_rq_pending_failure_eject.inc();
        h.onUpstreamConnectError(err ?? new ProxyError(ProxyErrorCode.UPSTREAM_CONNECT, 'connect failed'));
      }
      return;
    }
    this.cluster.stats.upstream_cx_http2_total.inc();
    const session = http2.connect('http://' + (this.sni ?? this.host.key), { createConnection: () => socket });
    session.on('error', noop);
    session.on('close', () => {
      if (this.session === session) this.session = null;
    });
    session.on('goaway', () => {
      if (this.session === session) this.session = null;
    });
    // Idle: the session must not keep the process alive (the pool sweeps nothing else for h2).
    session.unref();
    this.session = session;
    this.streams = 0;
    const waiting = this.waiting.splice(0);
    for (const h of waiting) {
      this.pending.upstream_rq_pending_active.dec();
      if (this.session === null) {
        // maxRequestsPerConnection used it up: the rest wait for the next connection
        this.acquire(h);
        continue;
      }
      this.attach(h);
    }
  }

  close(): void {
    const s = this.session;
    this.session = null;
    s?.close();
  }
}

const registry = new WeakMap<UpstreamCluster, Map<string, H2Pool>>();

export function h2PoolFor(cluster: UpstreamCluster, host: UpstreamHost, sni: string | null, store: StatsStore): H2Pool {
  let pools = registry.get(cluster);
  if (pools === undefined) {
    pools = new Map();
    registry.set(cluster, pools);
    const own = pools;
    cluster.whenClosed(() => {
      for (const p of own.values()) p.close();
    });
  }
  const poolSni = cluster.config.tls !== null ? sni : null;
  const key = host.key + '|' + (poolSni ?? '');
  let pool = pools.get(key);
  if (pool === undefined) {
    pool = new H2Pool(cluster, host, poolSni, pendingStatsFor(store, cluster.name, cluster.stats));
    pools.set(key, pool);
  }
  return pool;
}
