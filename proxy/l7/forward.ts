// One proxied HTTP exchange: takes a pooled upstream connection (h1-upstream.ts), writes the request
// head and streams the body with backpressure both ways, streams the response back, retries connect
// failures as Istio's default retry policy does, and completes the access-log record. One object per
// request holds all state (fields initialised in the constructor); its methods are the callbacks of
// both sides (StreamHandler downstream, UpstreamHandler upstream), so no closure is made per request.
//
// The request body is only read once the upstream connection is ready, so a connect failure can be
// retried with nothing lost. After the response has started, an upstream failure resets the
// downstream connection; it never appends text to a truncated body (STYLE.md rule 12).

import { performance } from 'node:perf_hooks';
import type { ForwardAction } from '../../config/compile/snapshot';
import type { ProxyContext } from '../context';
import { ProxyError, ProxyErrorCode, rescue } from '../errors';
import type { AccessLogRecord } from '../observe/access-log-record';
import type { HttpStats } from '../observe/stats';
import type { OriginalDestination, UpstreamCluster } from '../upstream/cluster';
import type { UpstreamHost } from '../upstream/host';
import type { PickContext } from '../upstream/lb';
import { completeRequest } from './complete';
import type { ResponseHead } from './h1-head';
import { poolFor, type H1Pool, type UpstreamConnection, type UpstreamHandler } from './h1-upstream';
import { downstreamResponseHeaders } from './headers';
import { sendRescue } from './local-reply';
import { NO_BODY, UNKNOWN_LENGTH, type DownstreamStream, type StreamHandler } from './stream';
import type { ResponseReader } from './response-reader';
import { relayUpgraded, switchingProtocolsHead, type TunnelOwner } from './upgrade';
import type { RelayResult } from '../l4/relay';
import type net from 'node:net';

/** Envoy's default retry back-off base interval. */
const RETRY_BACKOFF_MS = 25;

export interface ForwardInit {
  readonly ctx: ProxyContext;
  readonly stream: DownstreamStream;
  readonly record: AccessLogRecord;
  readonly cluster: UpstreamCluster;
  readonly action: ForwardAction;
  readonly httpStats: HttpStats;
  /** the upstream request head up to (not including) the framing headers and the blank line */
  readonly headText: string;
  readonly pickCtx: PickContext;
  readonly originalDst: OriginalDestination | null;
  readonly sni: string | null;
  /** a WebSocket upgrade was offered and forwarded: a 101 turns the exchange into a relay (upgrade.ts) */
  readonly upgrade?: boolean;
}

export class ForwardExchange implements StreamHandler, UpstreamHandler, TunnelOwner {
  private readonly ctx: ProxyContext;
  private readonly stream: DownstreamStream;
  private readonly record: AccessLogRecord;
  private readonly cluster: UpstreamCluster;
  private readonly action: ForwardAction;
  private readonly httpStats: HttpStats;
  private readonly headText: string;
  private readonly pickCtx: PickContext;
  private readonly originalDst: OriginalDestination | null;
  private readonly sni: string | null;
  private readonly upgrade: boolean;
  private host: UpstreamHost | null = null;
  private pool: H1Pool | null = null;
  private conn: UpstreamConnection | null = null;
  /** An upstream request is counted active (rq_active gauges) until this goes false. */
  private rqOpen = false;
  private attemptsLeft: number;
  /** one transparent retry when a reused keep-alive connection turns out closed */
  private staleRetryLeft = true;
  private responseStarted = false;
  /** At least one retry ran: a final connect failure is then logged `UF,URX`, as Envoy does. */
  private retried = false;
  private finished = false;
  private waitingDrain = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(init: ForwardInit) {
    this.ctx = init.ctx;
    this.stream = init.stream;
    this.record = init.record;
    this.cluster = init.cluster;
    this.action = init.action;
    this.httpStats = init.httpStats;
    this.headText = init.headText;
    this.pickCtx = init.pickCtx;
    this.originalDst = init.originalDst;
    this.sni = init.sni;
    this.upgrade = init.upgrade === true;
    // null: the route has no retry policy (`retries.attempts: 0`, or faults configured), so none.
    this.attemptsLeft = init.action.retry === null ? 0 : init.action.retry.attempts;
    this.record.upstreamCluster = this.cluster.name;
  }

  start(): void {
    this.stream.handler = this;
    if (this.action.timeoutMs > 0) this.timer = setTimeout(onRouteTimeout, this.action.timeoutMs, this);
    this.attempt();
  }

  private attempt(): void {
    if (this.finished) return;
    const cluster = this.cluster;
    const host = cluster.pick(this.pickCtx, this.originalDst);
    if (host === null) {
      cluster.stats.upstream_cx_none_healthy.inc();
      this.fail(new ProxyError(ProxyErrorCode.NO_HEALTHY_UPSTREAM, cluster.noHostsReason ?? 'no healthy upstream'));
      return;
    }
    this.host = host;
    this.record.upstreamHost = host.key;
    const pool = poolFor(cluster, host, this.sni, this.ctx.stats);
    this.pool = pool;
    pool.acquire(this);
  }

  // ---- upstream callbacks

  onUpstreamReady(conn: UpstreamConnection): void {
    if (this.finished) {
      // Gave up while connecting (timeout, client gone): the fresh connection serves someone else.
      conn.pool.release(conn);
      return;
    }
    this.conn = conn;
    // A request counts as an upstream request once it has a connection (Envoy's attachStreamToClient);
    // while it waits for one it is pending (h1-upstream.ts).
    const cluster = this.cluster;
    const host = this.host!;
    cluster.stats.upstream_rq_total.inc();
    cluster.stats.upstream_rq_active.inc();
    host.counters.rq_total++;
    host.counters.rq_active++;
    this.rqOpen = true;
    const stream = this.stream;
    const head = stream.head;
    let framing = '';
    if (head.chunked) framing = 'transfer-encoding: chunked\r\n';
    else if (head.contentLength >= 0) framing = 'content-length: ' + head.contentLength + '\r\n';
    conn.begin(this, this.headText + framing + '\r\n', head.method === 'HEAD', head.chunked, this.upgrade);
    if (stream.hasBody) stream.startBody();
    else conn.endRequest();
  }

  onUpstreamConnectError(err: ProxyError): void {
    this.onResponseError(err, false);
  }

  onResponseHead(head: ResponseHead): void {
    const stream = this.stream;
    if (this.finished || stream.finished) {
      this.conn?.abort();
      return;
    }
    this.responseStarted = true;
    const status = head.status;
    const record = this.record;
    record.responseCode = status;
    record.responseCodeDetails = 'via_upstream';
    const serviceTime = Math.round(performance.now() - record.startHr);
    record.upstreamServiceTimeMs = serviceTime;
    const out = downstreamResponseHeaders(head, this.action.responseHeaders);
    out.push('x-envoy-upstream-service-time', String(serviceTime));
    let length: number;
    if (stream.head.method === 'HEAD') length = head.contentLength >= 0 && !head.chunked ? head.contentLength : NO_BODY;
    else if (status === 204 || status === 304) length = NO_BODY;
    else if (head.chunked || head.contentLength < 0) length = UNKNOWN_LENGTH;
    else length = head.contentLength;
    stream.respond(status, out, length);
  }

  onUpgraded(head: ResponseHead, socket: net.Socket, reader: ResponseReader, rest: Buffer | null): void {
    if (this.finished || this.stream.finished) {
      socket.destroy();
      this.endRequestStats();
      return;
    }
    this.responseStarted = true;
    // Envoy's route timeout ends with the response headers; an upgraded stream lives on its own.
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const record = this.record;
    record.responseCode = 101;
    record.responseCodeDetails = 'via_upstream';
    record.upstreamServiceTimeMs = Math.round(performance.now() - record.startHr);
    const down = this.stream.takeOver(switchingProtocolsHead(head, this.action.responseHeaders));
    if (down === null) {
      socket.destroy();
      this.onResponseError(new ProxyError(ProxyErrorCode.UPSTREAM_PROTOCOL, 'upgrade on a stream that cannot be taken over', { transportReason: 'protocol_error' }), false);
      return;
    }
    if (rest !== null) record.bytesSent += rest.length;
    relayUpgraded(down, socket, reader, rest, this);
  }

  /** The upgraded connection's relay ended: the request's stats and its one access-log line. */
  onTunnelClosed(r: RelayResult): void {
    const record = this.record;
    record.bytesReceived += r.bytesFromDownstream;
    record.bytesSent += r.bytesFromUpstream;
    if (r.error !== null) record.addFlag(r.downstreamError ? 'DC' : 'UC');
    this.endRequestStats();
    this.host!.counters.rq_success++;
    this.cluster.stats.upstream_rq_completed.inc();
    this.cluster.stats.responseCode(101);
    this.finish();
  }

  onResponseData(chunk: Buffer): void {
    if (this.finished) return;
    this.record.bytesSent += chunk.length;
    if (!this.stream.write(chunk) && !this.waitingDrain) {
      this.waitingDrain = true;
      this.conn?.pause();
    }
  }

  onResponseEnd(): void {
    if (this.finished) return;
    const cluster = this.cluster;
    const host = this.host!;
    this.conn = null;
    this.endRequestStats();
    host.counters.rq_success++;
    cluster.stats.upstream_rq_completed.inc();
    if (this.retried) cluster.stats.upstream_rq_retry_success.inc();
    cluster.stats.responseCode(this.record.responseCode);
    const now = performance.now();
    cluster.stats.upstream_rq_time.record(now - this.record.startHr);
    this.finish(now);
    this.stream.end();
  }

  onResponseError(err: ProxyError, retryable: boolean): void {
    this.conn = null;
    this.endRequestStats();
    if (this.finished) return;
    const code = err.code;
    const host = this.host;
    if (host !== null) host.counters.rq_error++;
    const untouched = !this.stream.bodyStarted && !this.responseStarted;
    if (retryable && this.staleRetryLeft && untouched && !this.stream.hasBody) {
      // A keep-alive connection the upstream had already closed: not a failure of this request.
      this.staleRetryLeft = false;
      this.attempt();
      return;
    }
    if (code === ProxyErrorCode.UPSTREAM_CONNECT || code === ProxyErrorCode.UPSTREAM_CONNECT_TIMEOUT || code === ProxyErrorCode.UPSTREAM_TLS) {
      if (this.attemptsLeft > 0 && untouched) {
        this.attemptsLeft--;
        this.retried = true;
        this.cluster.stats.upstream_rq_retry.inc();
        setTimeout(retryAttempt, RETRY_BACKOFF_MS, this).unref();
        return;
      }
      if (this.retried) this.cluster.stats.upstream_rq_retry_limit_exceeded.inc();
    }
    if (code === ProxyErrorCode.UPSTREAM_RESET || code === ProxyErrorCode.UPSTREAM_RESET_AFTER_RESPONSE) this.cluster.stats.upstream_rq_rx_reset.inc();
    this.fail(this.responseStarted && code === ProxyErrorCode.UPSTREAM_RESET ? new ProxyError(ProxyErrorCode.UPSTREAM_RESET_AFTER_RESPONSE, err.message, { transportReason: err.transportReason }) : err);
  }

  writePending(): boolean {
    return this.stream.writePending();
  }

  onUpstreamDrain(): void {
    if (!this.finished) this.stream.resumeBody();
  }

  cork(): void {
    this.stream.cork();
  }

  uncork(): void {
    this.stream.uncork();
  }

  // ---- downstream callbacks

  onBodyData(chunk: Buffer): void {
    this.record.bytesReceived += chunk.length;
    const conn = this.conn;
    if (conn !== null && !conn.writeBody(chunk)) this.stream.pauseBody();
  }

  onBodyEnd(): void {
    this.conn?.endRequest();
  }

  onBodyError(): void {
    this.abortUpstream();
    this.fail(new ProxyError(ProxyErrorCode.DOWNSTREAM_PROTOCOL, 'malformed request body'));
  }

  onDrain(): void {
    if (this.waitingDrain) {
      this.waitingDrain = false;
      this.conn?.resume();
    }
  }

  onAbort(): void {
    if (this.finished) return;
    // The client went away before the exchange completed: Envoy logs DC; the upstream is cancelled.
    this.record.addFlag('DC');
    this.record.responseCodeDetails = 'downstream_remote_disconnect';
    this.httpStats.downstream_rq_rx_reset.inc();
    this.cluster.stats.upstream_rq_tx_reset.inc();
    this.finish();
    this.abortUpstream();
  }

  // ---- internals

  onTimeout(): void {
    if (this.finished) return;
    this.cluster.stats.upstream_rq_timeout.inc();
    if (this.host) this.host.counters.rq_timeout++;
    this.abortUpstream();
    this.fail(new ProxyError(ProxyErrorCode.UPSTREAM_TIMEOUT, 'route timeout'));
  }

  retry(): void {
    this.attempt();
  }

  private abortUpstream(): void {
    const conn = this.conn;
    this.conn = null;
    if (conn !== null) conn.abort();
    else if (this.pool !== null) this.pool.cancel(this);
    this.endRequestStats();
  }

  private endRequestStats(): void {
    const host = this.host;
    if (host === null || !this.rqOpen) return;
    this.rqOpen = false;
    this.cluster.stats.upstream_rq_active.dec();
    host.counters.rq_active--;
  }

  private fail(err: ProxyError): void {
    if (this.finished) return;
    const r = rescue(err);
    const record = this.record;
    record.addFlag(r.flags);
    if (this.retried && r.retryable) record.addFlag('URX');
    record.upstreamTransportFailureReason = err.transportReason;
    record.responseCodeDetails = r.details;
    if (this.responseStarted || this.stream.headersSent) {
      // Mid-body failure: reset, never append text (STYLE.md rule 12).
      this.finish();
      this.stream.reset();
      return;
    }
    // Reply first so the logged record carries the local reply's status.
    sendRescue(this.stream, record, { ...r, flags: '' });
    this.finish();
  }

  private finish(now = performance.now()): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer !== null) clearTimeout(this.timer);
    completeRequest(this.ctx, this.httpStats, this.record, now);
  }
}

function onRouteTimeout(ex: ForwardExchange): void {
  ex.onTimeout();
}

function retryAttempt(ex: ForwardExchange): void {
  ex.retry();
}
