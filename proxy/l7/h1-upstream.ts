// The upstream side of the HTTP/1.1 fast path: keep-alive connections per (cluster, host[, SNI]),
// opened with the cluster's own connect (TCP/TLS origination and Envoy's upstream_cx_* accounting
// in upstream/connect.ts), one request at a time per connection. The request head goes out as one
// latin1 string; the response head is parsed with the same strict parser as requests, and the body
// is framed exactly (Content-Length, chunked, or until close), so a connection returns to the pool
// only when its response ended on a message boundary. Connections read into a buffer of their own
// (response-reader.ts), not through 'data' events; over TLS the buffer gets the decrypted bytes.
//
// A pool with idle connections sweeps them once a second on the proxy's one clock (timer-wheel.ts),
// and they are unref'd while idle, so they never keep a process alive. Every callback is a method bound once per connection.

import type net from 'node:net';
import { ISTIO_MAX_UINT32 } from '../../config/compile/snapshot';
import { ProxyError, ProxyErrorCode } from '../errors';
import type { StatsStore } from '../observe/stats';
import type { UpstreamCluster } from '../upstream/cluster';
import type { UpstreamHost } from '../upstream/host';
import { BodyDecoder, Framing, endBody, writeBodyChunk } from './h1-body';
import { HeadError, findHeadEnd, parseResponseHead, type ResponseHead } from './h1-head';
import { pendingStatsFor, type PendingStats } from './pending-stats';
import { ResponseReader, type ResponseSink } from './response-reader';
import { clock, type WheelTimer } from '../timer-wheel';

/** Idle keep-alive connections close after this (below Node's and most servers' 5 s keepAliveTimeout). */
const IDLE_MS = 4_000;
const SWEEP_MS = 1_000;

/** Where a request gets its upstream connection: the HTTP/1.1 pool here, or h2-upstream.ts's. */
export interface RequestPool {
  acquire(h: UpstreamHandler): void;
  /** the handler gave up while pending */
  cancel(h: UpstreamHandler): void;
  /** a connection handed to a handler that no longer wants it */
  release(c: PooledRequest): void;
}

/** One request's hold on an upstream connection (an HTTP/1.1 connection, or an HTTP/2 stream). */
export interface PooledRequest {
  readonly pool: RequestPool;
  begin(handler: UpstreamHandler, head: string, isHeadMethod: boolean, chunked: boolean, upgrade?: boolean): void;
  writeBody(chunk: Buffer): boolean;
  endRequest(): void;
  pause(): void;
  resume(): void;
  abort(): void;
}

export interface UpstreamHandler {
  onUpstreamReady(conn: PooledRequest): void;
  onUpstreamConnectError(err: ProxyError): void;
  /** a final (>= 200) response head; 1xx are consumed here */
  onResponseHead(head: ResponseHead): void;
  onResponseData(chunk: Buffer): void;
  /** HTTP/2 upstreams: the response's trailers ([name, value, ...]), before onResponseEnd */
  onResponseTrailers?(fields: string[]): void;
  onResponseEnd(): void;
  /** reset / protocol error. `retryable`: a reused connection closed before any byte of the response */
  onResponseError(err: ProxyError, retryable: boolean): void;
  onUpstreamDrain(): void;
  /**
   * A 101 to an Upgrade request: the socket is no longer HTTP and no longer pooled; the handler
   * owns it (l7/upgrade.ts relays it). `rest`: bytes that came after the 101 head (a copy).
   */
  onUpgraded(head: ResponseHead, socket: net.Socket, reader: ResponseReader, rest: Buffer | null): void;
  /** bytes given to onResponseData may still be referenced by a downstream write */
  writePending(): boolean;
  /** group the downstream writes of one upstream read */
  cork(): void;
  uncork(): void;
}

function deliverResponse(this: UpstreamConnection, chunk: Buffer): void {
  this.handler?.onResponseData(chunk);
}

export class UpstreamConnection implements ResponseSink, PooledRequest {
  readonly socket: net.Socket;
  readonly pool: H1Pool;
  handler: UpstreamHandler | null = null;
  private buf: Buffer | null = null;
  private head: ResponseHead | null = null;
  private readonly decoder = new BodyDecoder();
  private requests = 0;
  /** served a request before the current one */
  private reused = false;
  private gotBytes = false;
  private requestIsHead = false;
  private requestDone = false;
  private chunkedOut = false;
  private pendingHead: string | null = null;
  /** the current request asks to Upgrade: a 101 hands the socket over instead of failing */
  private upgrade = false;
  private readonly reader: ResponseReader;
  private readonly onCloseBound: () => void;
  private readonly onEndBound: () => void;
  private readonly onDrainBound: () => void;
  idleSince = 0;
  idleMs = IDLE_MS;
  closed = false;

  /** `reader`: the socket was opened with its onread, so it emits no 'data'. */
  constructor(pool: H1Pool, socket: net.Socket, reader: ResponseReader) {
    this.pool = pool;
    this.socket = socket;
    reader.sink = this;
    this.reader = reader;
    this.onCloseBound = this.onClose.bind(this);
    this.onEndBound = this.onEnd.bind(this);
    this.onDrainBound = this.onDrain.bind(this);
    socket.on('close', this.onCloseBound);
    // Upstream sockets are opened half-open capable (the L4 relay needs it); for HTTP a FIN ends the
    // connection: a close-delimited body ends there, anything else is a reset (see onClose).
    socket.on('end', this.onEndBound);
    socket.on('error', onSocketError);
    socket.on('drain', this.onDrainBound);
  }

  /** Attach a request; the head is written with the first body bytes (or at endRequest). */
  begin(handler: UpstreamHandler, head: string, isHeadMethod: boolean, chunked: boolean, upgrade = false): void {
    this.handler = handler;
    this.upgrade = upgrade;
    this.head = null;
    this.gotBytes = false;
    this.requestIsHead = isHeadMethod;
    this.requestDone = false;
    this.chunkedOut = chunked;
    this.reused = this.requests > 0;
    this.requests++;
    this.pendingHead = head;
  }

  /** Request body payload; false when the caller should wait for onUpstreamDrain. */
  writeBody(chunk: Buffer): boolean {
    const head = this.pendingHead;
    this.pendingHead = null;
    return writeBodyChunk(this.socket, head, this.chunkedOut, chunk);
  }

  endRequest(): void {
    this.requestDone = true;
    const head = this.pendingHead;
    this.pendingHead = null;
    endBody(this.socket, head, this.chunkedOut);
  }

  pause(): void {
    this.socket.pause();
  }
  resume(): void {
    this.socket.resume();
  }

  /** Abandon the exchange (timeout, downstream gone, bad framing): the connection cannot be reused. */
  abort(): void {
    this.handler = null;
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.pool.forget(this);
  }

  /** ResponseReader delivery: `chunk` is borrowed; true when a downstream write still holds part of it. */
  upstreamBytes(chunk: Buffer): boolean {
    const h = this.handler;
    if (h === null) {
      // Bytes nobody asked for (on an idle connection): the framing is lost, drop the connection.
      this.abort();
      return false;
    }
    this.gotBytes = true;
    h.cork();
    this.consume(chunk);
    h.uncork();
    return h.writePending();
  }

  private consume(chunk: Buffer): void {
    let buf = chunk;
    let at = 0;
    if (this.head === null) {
      buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
      this.buf = null;
      for (;;) {
        const end = findHeadEnd(buf, at);
        if (end === 0) {
          // A copy when it is the read buffer itself: that may be borrowed (response-reader.ts).
          this.buf = buf === chunk ? Buffer.from(buf.subarray(at)) : buf.subarray(at);
          return;
        }
        const head = end < 0 ? null : parseResponseHead(buf, at, end);
        if (head === null) {
          this.fail(new ProxyError(ProxyErrorCode.UPSTREAM_PROTOCOL, end === HeadError.TOO_LARGE ? 'upstream response head too large' : 'malformed upstream response head', { transportReason: 'protocol_error' }), false);
          return;
        }
        at = end;
        if (head.status >= 200) {
          this.head = head;
          break;
        }
        if (head.status === 101 && this.upgrade) {
          this.handOver(head, end < buf.length ? Buffer.from(buf.subarray(end)) : null);
          return;
        }
        if (head.status === 101) {
          this.fail(new ProxyError(ProxyErrorCode.UPSTREAM_PROTOCOL, 'upstream switched protocols', { transportReason: 'protocol_error' }), false);
          return;
        }
        // 1xx informational (100 Continue, 103 Early Hints): not forwarded on this HTTP/1.1 path.
      }
      const head = this.head;
      const noBody = this.requestIsHead || head.status === 204 || head.status === 304;
      this.decoder.reset(noBody ? Framing.NONE : head.chunked ? Framing.CHUNKED : head.contentLength >= 0 ? Framing.LENGTH : Framing.CLOSE, head.contentLength);
      this.handler!.onResponseHead(head);
      if (this.handler === null) return; // the handler gave up on it
    }
    const r = this.decoder.decode(buf, at, buf.length, this, deliverResponse);
    if (r < 0) {
      this.fail(new ProxyError(ProxyErrorCode.UPSTREAM_RESET_AFTER_RESPONSE, 'malformed upstream response body', { transportReason: 'protocol_error' }), false);
      return;
    }
    if (this.decoder.done && this.handler !== null) this.complete(r < buf.length);
  }

  private complete(extraBytes: boolean): void {
    const h = this.handler!;
    const head = this.head!;
    this.handler = null;
    const pool = this.pool;
    const max = pool.cluster.config.maxRequestsPerConnection;
    this.idleMs = keepAliveMs(head.keepAlive);
    const reusable = this.requestDone && !extraBytes && !head.close && this.decoder.framing !== Framing.CLOSE && (max <= 0 || this.requests < max) && this.idleMs > 0;
    if (reusable) {
      // The handler may have paused reading for backpressure; an idle connection must read again
      // (to see the upstream's FIN, and to serve the next request).
      if (this.socket.isPaused()) this.socket.resume();
      pool.release(this);
    } else this.abort();
    h.onResponseEnd();
  }

  /** The upstream switched protocols: the socket leaves HTTP (and the pool) for the handler. */
  private handOver(head: ResponseHead, rest: Buffer | null): void {
    const h = this.handler!;
    this.handler = null;
    this.closed = true;
    const socket = this.socket;
    socket.removeListener('close', this.onCloseBound);
    socket.removeListener('end', this.onEndBound);
    socket.removeListener('drain', this.onDrainBound);
    this.pool.forget(this);
    h.onUpgraded(head, socket, this.reader, rest);
  }

  private fail(err: ProxyError, retryable: boolean): void {
    const h = this.handler;
    this.abort();
    h?.onResponseError(err, retryable);
  }

  private onClose(): void {
    const wasClosed = this.closed;
    this.closed = true;
    const h = this.handler;
    if (h === null) {
      if (!wasClosed) this.pool.forget(this);
      return;
    }
    if (this.head !== null && this.decoder.framing === Framing.CLOSE) {
      this.handler = null;
      this.pool.forget(this);
      h.onResponseEnd();
      return;
    }
    this.handler = null;
    this.pool.forget(this);
    const started = this.head !== null;
    const err = new ProxyError(started ? ProxyErrorCode.UPSTREAM_RESET_AFTER_RESPONSE : ProxyErrorCode.UPSTREAM_RESET, 'upstream connection closed', { transportReason: 'connection_termination' });
    h.onResponseError(err, !started && !this.gotBytes && this.reused);
  }

  private onEnd(): void {
    this.socket.destroy();
  }

  private onDrain(): void {
    this.handler?.onUpstreamDrain();
  }
}

function onSocketError(): void {
  // 'close' follows and reports the failure to the handler.
}

/** Keep-Alive: timeout=N from the upstream: stop reusing 1 s before it, as undici does. */
function keepAliveMs(v: string | null): number {
  if (v === null) return IDLE_MS;
  const m = /timeout=(\d+)/i.exec(v);
  return m === null ? IDLE_MS : Math.min(IDLE_MS, Number(m[1]) * 1000 - 1000);
}

/**
 * Keep-alive connections to one host (and SNI when TLS is originated), with Envoy's HTTP/1.1
 * connection pool semantics (source/common/conn_pool/conn_pool_base.cc):
 * - a request takes an idle connection when there is one; otherwise it becomes *pending*
 *   (upstream_rq_pending_total, _pending_active), unless the cluster already has
 *   http1MaxPendingRequests pending: then it fails at once with UO and upstream_rq_pending_overflow;
 * - a connection is opened while there are more pending requests than connections being opened,
 *   unless the cluster is at maxConnections (upstream_cx_overflow each time that stops one); a pool
 *   with no connection at all opens one anyway, so its pending requests cannot starve;
 * - pending requests are served in arrival order by each connection that becomes free; a request
 *   that gives up while pending (route timeout, client gone) leaves the queue (upstream_rq_cancelled);
 * - a failed connect fails every pending request of the pool (upstream_rq_pending_failure_eject),
 *   each of which may then retry;
 * - attaching a request checks the request circuit breaker (http2MaxRequests, Envoy max_requests):
 *   over it the request fails with UO and upstream_rq_pending_overflow.
 */
export class H1Pool implements WheelTimer, RequestPool {
  wheelDue = -1;
  readonly cluster: UpstreamCluster;
  readonly host: UpstreamHost;
  readonly sni: string | null;
  private readonly pending: PendingStats;
  private readonly idle: UpstreamConnection[] = [];
  /** connections open or opening */
  private total = 0;
  /** connections being opened (connect + TLS handshake) */
  private connecting = 0;
  /** pending requests, oldest first */
  private readonly waiting: UpstreamHandler[] = [];

  constructor(cluster: UpstreamCluster, host: UpstreamHost, sni: string | null, pending: PendingStats) {
    this.cluster = cluster;
    this.host = host;
    this.sni = sni;
    this.pending = pending;
  }

  acquire(h: UpstreamHandler): void {
    const idle = this.idle;
    while (idle.length > 0) {
      const c = idle.pop()!;
      if (c.closed || c.socket.destroyed) continue;
      c.socket.ref();
      if (!this.attach(c, h)) this.release(c);
      return;
    }
    const ps = this.pending;
    if (ps.upstream_rq_pending_active.value >= this.cluster.config.circuitBreakers.maxPendingRequests) {
      this.cluster.stats.upstream_rq_pending_overflow.inc();
      h.onUpstreamConnectError(new ProxyError(ProxyErrorCode.UPSTREAM_OVERFLOW, `${this.cluster.name}: http1MaxPendingRequests ${this.cluster.config.circuitBreakers.maxPendingRequests} reached`));
      return;
    }
    this.waiting.push(h);
    ps.upstream_rq_pending_total.inc();
    ps.upstream_rq_pending_active.inc();
    this.tryOpen();
  }

  /** A handler gave up while pending (timeout, downstream gone): it leaves the queue. */
  cancel(h: UpstreamHandler): void {
    const i = this.waiting.indexOf(h);
    if (i < 0) return;
    this.waiting.splice(i, 1);
    this.pending.upstream_rq_pending_active.dec();
    this.pending.upstream_rq_cancelled.inc();
  }

  /** Requests now pending in this pool (tests, /clusters). */
  get pendingCount(): number {
    return this.waiting.length;
  }

  /**
   * Envoy's tryCreateNewConnections: open connections while the pending requests outnumber the
   * connections being opened (at most 3 per call, as Envoy), within maxConnections.
   */
  private tryOpen(): void {
    for (let i = 0; i < 3 && this.waiting.length > this.connecting; i++) {
      // overflowError() counts upstream_cx_overflow, as Envoy does each time the limit stops one.
      const overflow = this.cluster.overflowError();
      if (overflow !== null && this.total > 0) return;
      this.open(overflow !== null);
      if (overflow !== null) return;
    }
  }

  /** `overLimit`: the pool has no connection and opens one past maxConnections (Envoy does too). */
  private open(overLimit: boolean): void {
    this.total++;
    this.connecting++;
    // Responses are read into the connection's own buffer. One closure per connection, to hand its
    // reader over.
    const reader = new ResponseReader();
    this.cluster.connect(this.host, this.sni, (err, socket) => this.connected(err, socket, reader), reader.onread, !overLimit);
  }

  private connected(err: ProxyError | null, socket: net.Socket | null, reader: ResponseReader): void {
    this.connecting--;
    if (err !== null || socket === null) {
      this.total--;
      this.purge(err ?? new ProxyError(ProxyErrorCode.UPSTREAM_CONNECT, 'connect failed'));
      this.tryOpen();
      return;
    }
    this.cluster.stats.upstream_cx_http1_total.inc();
    this.release(new UpstreamConnection(this, socket, reader));
  }

  /** A connect failed: every pending request fails with it (each may retry; none is failed inline twice). */
  private purge(err: ProxyError): void {
    const failed = this.waiting.splice(0);
    const ps = this.pending;
    for (const h of failed) {
      ps.upstream_rq_pending_active.dec();
      ps.upstream_rq_pending_failure_eject.inc();
      h.onUpstreamConnectError(err);
    }
  }

  /** Hand `c` to `h` unless the request circuit breaker (max_requests) is full. */
  private attach(c: UpstreamConnection, h: UpstreamHandler): boolean {
    const cluster = this.cluster;
    const max = cluster.config.circuitBreakers.maxRequests;
    if (max < ISTIO_MAX_UINT32 && cluster.stats.upstream_rq_active.value >= max) {
      cluster.stats.upstream_rq_pending_overflow.inc();
      h.onUpstreamConnectError(new ProxyError(ProxyErrorCode.UPSTREAM_OVERFLOW, `${cluster.name}: http2MaxRequests ${max} reached`));
      return false;
    }
    h.onUpstreamReady(c);
    return true;
  }

  /** A connection is free (new, or its exchange ended on a message boundary): the oldest pending request takes it, else it idles. */
  release(pooled: PooledRequest): void {
    const c = pooled as UpstreamConnection;
    const waiting = this.waiting;
    while (waiting.length > 0) {
      const w = waiting.shift()!;
      this.pending.upstream_rq_pending_active.dec();
      if (this.attach(c, w)) return;
    }
    c.idleSince = clock.now();
    c.socket.unref();
    this.idle.push(c);
    if (this.wheelDue < 0) clock.schedule(this, SWEEP_MS);
  }

  forget(c: UpstreamConnection): void {
    this.total--;
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    // A lost connection: pending requests need another one (Envoy: tryCreateNewConnections).
    if (this.waiting.length > 0) this.tryOpen();
  }

  /** Close idle connections past their keep-alive time (or all when the cluster is gone). Returns how many stay idle. */
  sweep(now: number, all: boolean): number {
    const idle = this.idle;
    for (let i = idle.length - 1; i >= 0; i--) {
      const c = idle[i]!;
      if (all || c.closed || now - c.idleSince >= c.idleMs) {
        idle.splice(i, 1);
        if (!c.closed) {
          c.closed = true;
          this.total--;
          c.socket.destroy();
        }
      }
    }
    return idle.length;
  }

  closeIdle(): void {
    this.sweep(0, true);
    clock.cancel(this);
  }

  /** The sweep's tick: again while connections stay idle. */
  onTimer(): void {
    if (this.sweep(clock.now(), this.cluster.isClosed) > 0) clock.schedule(this, SWEEP_MS);
  }
}

// ---- pool registry: per live cluster, by host key, then by SNI when TLS is originated ('' for
// plain TCP). Nested maps, so a request's lookup builds no key string.

const registry = new WeakMap<UpstreamCluster, Map<string, Map<string, H1Pool>>>();

export function poolFor(cluster: UpstreamCluster, host: UpstreamHost, sni: string | null, store: StatsStore): H1Pool {
  let hosts = registry.get(cluster);
  if (hosts === undefined) {
    hosts = new Map();
    registry.set(cluster, hosts);
    cluster.whenClosed(() => closeIdlePools(cluster));
  }
  let pools = hosts.get(host.key);
  if (pools === undefined) {
    pools = new Map();
    hosts.set(host.key, pools);
  }
  const poolSni = cluster.config.tls !== null ? sni : null;
  const key = poolSni ?? '';
  let pool = pools.get(key);
  if (pool === undefined) {
    pool = new H1Pool(cluster, host, poolSni, pendingStatsFor(store, cluster.name, cluster.stats));
    pools.set(key, pool);
  }
  return pool;
}

/** Close every idle connection of a cluster (reload removed it, or the runtime stops). */
export function closeIdlePools(cluster: UpstreamCluster): void {
  const hosts = registry.get(cluster);
  if (hosts === undefined) return;
  for (const pools of hosts.values()) for (const p of pools.values()) p.closeIdle();
  registry.delete(cluster);
}
