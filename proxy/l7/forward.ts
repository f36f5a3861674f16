// One proxied HTTP exchange: takes a pooled upstream connection (h1-upstream.ts), writes the request
// head and streams the body with backpressure both ways, streams the response back, retries per the
// route's policy (retry-policy.ts: retryOn, perTryTimeout, jittered back-off, x-envoy-attempt-count),
// applies a fault delay first (fault.ts), tees the request to mirrors (mirror.ts), adds CORS
// response headers (cors.ts), and completes the access-log record. One object per request holds
// all state (fields initialised in the constructor); its methods are the callbacks of both sides
// (StreamHandler downstream, UpstreamHandler upstream), so no closure is made per request.
//
// The request body is only read once the upstream connection is ready, so a connect failure can be
// retried with nothing lost. After that, a body of up to 64 KiB (Content-Length) is kept and sent
// again by a retry; a larger or chunked one is not, and such a request is not retried once its body
// has gone upstream (Envoy buffers up to its 1 MiB buffer limit). After the response
// has started, an upstream failure resets the downstream connection; it never appends text to a
// truncated body.

import { performance } from 'node:perf_hooks';
import type { ForwardAction, HeaderOps, RetryPolicy } from '../../config/compile/snapshot';
import type { ProxyContext } from '../context';
import { FLAG, ProxyError, ProxyErrorCode, rescue } from '../errors';
import type { AccessLogRecord } from '../observe/access-log-record';
import type { HttpStats } from '../observe/stats';
import type { OriginalDestination, UpstreamCluster } from '../upstream/cluster';
import type { UpstreamHost } from '../upstream/host';
import type { PickContext } from '../upstream/lb';
import { completeRequest } from './complete';
import type { ResponseHead } from './h1-head';
import type { PooledRequest, RequestPool, UpstreamHandler } from './h1-upstream';
import { requestPoolFor } from './upstream-pools';
import { downstreamResponseHeaders } from './headers';
import { sendRescue } from './local-reply';
import { sendFaultAbort, type FaultDecision, type FaultStats } from './fault';
import type { ShadowRequest } from './mirror';
import { backoffMs, retriableFailure, retriableResponse, retryStatsFor, type RetryStats } from './retry-policy';
import { NO_BODY, UNKNOWN_LENGTH, type DownstreamStream, type StreamHandler } from './stream';
import type { ResponseReader } from './response-reader';
import { relayUpgraded, switchingProtocolsHead, type TunnelOwner } from './upgrade';
import type { RelayResult } from '../l4/relay';
import type net from 'node:net';

/** Request bodies up to this size are kept for a retry (Envoy keeps up to its buffer limit, 1 MiB). */
const REPLAY_LIMIT = 64 * 1024;

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
  /** overrides the route's timeout (a gRPC request's grpc-timeout, grpc.ts) */
  readonly timeoutMs?: number;
  /** the chosen destination's response header operations (its own merged with the rule's) */
  readonly responseHeaders: HeaderOps | null;
  /** a drawn fault with a delay (an abort alone is answered before any exchange) */
  readonly fault: FaultDecision | null;
  readonly faultStats: FaultStats | null;
  /** CORS headers for the response ([name, value, ...]), or null */
  readonly corsHeaders: readonly string[] | null;
  /** starts the request's shadows (mirror.ts) when the exchange begins; null = no mirrors */
  readonly startShadows: (() => ShadowRequest[] | null) | null;
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
  private readonly timeoutMs: number;
  private readonly responseHeaders: HeaderOps | null;
  private readonly fault: FaultDecision | null;
  private readonly faultStats: FaultStats | null;
  private readonly corsHeaders: readonly string[] | null;
  private readonly startShadows: (() => ShadowRequest[] | null) | null;
  private shadows: ShadowRequest[] | null = null;
  private readonly retryPolicy: RetryPolicy | null;
  private retryStats: RetryStats | null = null;
  /** x-envoy-attempt-count of the current try (1 = the first) */
  private attemptCount = 0;
  /** hosts already tried (retryIgnorePreviousHosts); null until a retry needs it */
  private triedHosts: UpstreamHost[] | null = null;
  private perTryTimer: NodeJS.Timeout | null = null;
  /** a retry is scheduled or running: counted against maxRetries */
  private retryActive = false;
  private limitExceeded = false;
  private host: UpstreamHost | null = null;
  private pool: RequestPool | null = null;
  private conn: PooledRequest | null = null;
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
  /**
   * Copies of a small request body (Content-Length up to REPLAY_LIMIT), kept so a retry can send it
   * again, as Envoy buffers bodies for retries; null = not kept (no retry policy, chunked or larger:
   * such a request is not retried once its body has gone upstream).
   */
  private replay: Buffer[] | null = null;
  private bodyDone = false;
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
    this.timeoutMs = init.timeoutMs ?? init.action.timeoutMs;
    this.responseHeaders = init.responseHeaders;
    this.fault = init.fault;
    this.faultStats = init.faultStats;
    this.corsHeaders = init.corsHeaders;
    this.startShadows = init.startShadows;
    // null: the route has no retry policy (`retries.attempts: 0`, or faults configured), so none.
    this.retryPolicy = init.action.retry;
    const h = init.stream.head;
    if (init.action.retry !== null && init.stream.hasBody && !h.chunked && h.contentLength > 0 && h.contentLength <= REPLAY_LIMIT) this.replay = [];
    this.attemptsLeft = init.action.retry === null ? 0 : init.action.retry.attempts;
    this.record.upstreamCluster = this.cluster.name;
  }

  start(): void {
    this.stream.handler = this;
    const fault = this.fault;
    if (fault !== null && fault.delayMs > 0) {
      // The fault filter runs before the router: the route timeout starts after the delay.
      this.record.addFlag(FLAG.DELAY_INJECTED);
      this.faultStats?.delays_injected.inc();
      this.timer = setTimeout(onFaultDelayed, fault.delayMs, this);
      return;
    }
    this.begin();
  }

  /** After the fault filter: abort, or the router's work (timeout, mirrors, first attempt). */
  afterDelay(): void {
    this.timer = null;
    if (this.finished) return;
    const abort = this.fault?.abort ?? null;
    if (abort !== null) {
      this.faultStats?.aborts_injected.inc();
      sendFaultAbort(this.stream, this.record, abort);
      this.finish();
      return;
    }
    this.begin();
  }

  private begin(): void {
    if (this.timeoutMs > 0) this.timer = setTimeout(onRouteTimeout, this.timeoutMs, this);
    if (this.startShadows !== null) this.shadows = this.startShadows();
    this.attempt();
  }

  private attempt(): void {
    if (this.finished) return;
    const cluster = this.cluster;
    const tried = this.triedHosts;
    const p0 = this.retryPolicy;
    // retryRemoteLocalities (Envoy's previous_priorities): a retry goes to another locality priority.
    const exclude = tried !== null && p0 !== null && p0.retryRemoteLocalities ? new Set(tried.map(priorityOf)) : null;
    let host = cluster.pick(this.pickCtx, this.originalDst, exclude);
    // retryIgnorePreviousHosts (Istio's default): a retry re-picks up to 5 times to avoid the hosts
    // already tried (Envoy's previous_hosts predicate, host_selection_retry_max_attempts 5).
    if (tried !== null && host !== null && p0 !== null && p0.ignorePreviousHosts) {
      for (let i = 0; i < 5 && tried.includes(host); i++) host = cluster.pick(this.pickCtx, this.originalDst, exclude) ?? host;
    }
    if (host === null) {
      cluster.stats.upstream_cx_none_healthy.inc();
      this.fail(new ProxyError(ProxyErrorCode.NO_HEALTHY_UPSTREAM, cluster.noHostsReason ?? 'no healthy upstream'));
      return;
    }
    this.host = host;
    this.attemptCount++;
    const p = this.retryPolicy;
    if (p !== null && p.perTryTimeoutMs > 0) this.perTryTimer = setTimeout(onPerTryTimeout, p.perTryTimeoutMs, this);
    this.record.upstreamHost = host.key;
    const pool = requestPoolFor(cluster, host, this.sni, this.ctx.stats);
    this.pool = pool;
    pool.acquire(this);
  }

  // ---- upstream callbacks

  onUpstreamReady(conn: PooledRequest): void {
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
    // Istio turns on Envoy's include_request_attempt_count: every try says which it is.
    conn.begin(this, this.headText + 'x-envoy-attempt-count: ' + this.attemptCount + '\r\n' + framing + '\r\n', head.method === 'HEAD', head.chunked, this.upgrade);
    if (!stream.hasBody) conn.endRequest();
    else if (!stream.bodyStarted) stream.startBody();
    else {
      // A retry of a request whose body had begun: what was read goes again, the rest follows.
      for (const c of this.replay!) conn.writeBody(c);
      if (this.bodyDone) conn.endRequest();
      else stream.resumeBody();
    }
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
    const status = head.status;
    this.host!.outlier?.httpStatus(status);
    const p = this.retryPolicy;
    if (p !== null && retriableResponse(p, head)) {
      if (this.retryAllowed()) {
        // This try's response is dropped with its connection (Envoy resets the upstream stream).
        this.cluster.stats.upstream_rq_completed.inc();
        this.cluster.stats.responseCode(status);
        this.host!.counters.rq_error++;
        const conn = this.conn;
        this.conn = null;
        conn?.abort();
        this.endTry();
        this.scheduleRetry();
        return;
      }
      if (this.retried) this.retryLimitExceeded();
    }
    this.clearPerTry();
    this.responseStarted = true;
    const record = this.record;
    record.responseCode = status;
    record.responseCodeDetails = 'via_upstream';
    const serviceTime = Math.round(performance.now() - record.startHr);
    record.upstreamServiceTimeMs = serviceTime;
    const out = downstreamResponseHeaders(head, this.responseHeaders);
    out.push('x-envoy-upstream-service-time', String(serviceTime));
    const cors = this.corsHeaders;
    if (cors !== null) for (let i = 0; i < cors.length; i++) out.push(cors[i]!);
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
    if (r.error !== null) record.addFlag(r.downstreamError ? FLAG.DOWNSTREAM_CONNECTION_TERMINATION : FLAG.UPSTREAM_CONNECTION_TERMINATION);
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

  onResponseTrailers(fields: string[]): void {
    if (!this.finished) this.stream.trailers?.(fields);
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
    this.endRetry();
    cluster.stats.responseCode(this.record.responseCode);
    const now = performance.now();
    cluster.stats.upstream_rq_time.record(now - this.record.startHr);
    this.finish(now);
    this.stream.end();
  }

  onResponseError(err: ProxyError, retryable: boolean): void {
    this.conn = null;
    this.endTry();
    if (this.finished) return;
    const code = err.code;
    const host = this.host;
    if (host !== null) host.counters.rq_error++;
    const untouched = !this.stream.bodyStarted && !this.responseStarted;
    if (retryable && this.staleRetryLeft && untouched && !this.stream.hasBody) {
      // A keep-alive connection the upstream had already closed: not a failure of this request.
      this.staleRetryLeft = false;
      this.attemptCount--;
      this.attempt();
      return;
    }
    // Connect failures were counted by the connect (cx-accounting.ts); a reset or a per-try
    // timeout is a local-origin failure of this host for outlier detection.
    if (host !== null && (code === ProxyErrorCode.UPSTREAM_RESET || code === ProxyErrorCode.UPSTREAM_PER_TRY_TIMEOUT)) {
      host.outlier?.localOriginFailure(code === ProxyErrorCode.UPSTREAM_PER_TRY_TIMEOUT);
    }
    if (!this.responseStarted && this.retryPolicy !== null && retriableFailure(this.retryPolicy, code, code === ProxyErrorCode.UPSTREAM_RESET, err.transportReason)) {
      if (this.retryAllowed()) {
        this.scheduleRetry();
        return;
      }
      if (this.retried) this.retryLimitExceeded();
    }
    if (code === ProxyErrorCode.UPSTREAM_RESET || code === ProxyErrorCode.UPSTREAM_RESET_AFTER_RESPONSE) this.cluster.stats.upstream_rq_rx_reset.inc();
    this.fail(this.responseStarted && code === ProxyErrorCode.UPSTREAM_RESET ? new ProxyError(ProxyErrorCode.UPSTREAM_RESET_AFTER_RESPONSE, err.message, { transportReason: err.transportReason }) : err);
  }

  /**
   * May this request try again? Attempts left, nothing sent downstream, no body that would have
   * to be replayed, and the cluster's retry budget (connectionPool.http.maxRetries: Envoy's
   * max_retries breaker, upstream_rq_retry_overflow) not spent.
   */
  private retryAllowed(): boolean {
    if (this.attemptsLeft <= 0 || this.responseStarted || this.stream.headersSent) return false;
    if (this.stream.hasBody && this.stream.bodyStarted && this.replay === null) return false;
    const rs = this.retryStatsOf();
    if (!this.retryActive && rs.active >= this.cluster.config.circuitBreakers.maxRetries) {
      rs.upstream_rq_retry_overflow.inc();
      return false;
    }
    return true;
  }

  private scheduleRetry(): void {
    const p = this.retryPolicy!;
    this.attemptsLeft--;
    this.retried = true;
    if (!this.retryActive) {
      this.retryActive = true;
      this.retryStatsOf().active++;
    }
    if ((p.ignorePreviousHosts || p.retryRemoteLocalities) && this.host !== null) (this.triedHosts ??= []).push(this.host);
    this.cluster.stats.upstream_rq_retry.inc();
    this.retryStatsOf().upstream_rq_retry_backoff_exponential.inc();
    const n = p.attempts - this.attemptsLeft;
    setTimeout(retryAttempt, backoffMs(p.backoffBaseMs, n), this).unref();
  }

  private retryLimitExceeded(): void {
    this.cluster.stats.upstream_rq_retry_limit_exceeded.inc();
    // Envoy flags the request URX when its retries ran out, whatever the final answer was
    // (added at the end, after the failure's own flag: `UF,URX`, Envoy's order).
    this.limitExceeded = true;
    this.retried = false;
    this.endRetry();
  }

  private endRetry(): void {
    if (!this.retryActive) return;
    this.retryActive = false;
    this.retryStatsOf().active--;
  }

  private retryStatsOf(): RetryStats {
    return (this.retryStats ??= retryStatsFor(this.ctx.stats, this.cluster.name, this.cluster.stats));
  }

  /** One try is over (answered, failed, dropped for a retry): its request counts and per-try timer end. */
  private endTry(): void {
    this.endRequestStats();
    this.clearPerTry();
  }

  private clearPerTry(): void {
    if (this.perTryTimer !== null) {
      clearTimeout(this.perTryTimer);
      this.perTryTimer = null;
    }
  }

  /** perTryTimeout elapsed before this try's response: Envoy counts it and may retry. */
  onPerTryTimeout(): void {
    this.perTryTimer = null;
    if (this.finished || this.responseStarted) return;
    this.retryStatsOf().upstream_rq_per_try_timeout.inc();
    if (this.host !== null) this.host.counters.rq_timeout++;
    const conn = this.conn;
    this.conn = null;
    if (conn !== null) conn.abort();
    else if (this.pool !== null) this.pool.cancel(this);
    this.onResponseError(new ProxyError(ProxyErrorCode.UPSTREAM_PER_TRY_TIMEOUT, 'per-try timeout'), false);
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
    const shadows = this.shadows;
    if (shadows !== null) for (const s of shadows) s.body(chunk);
    if (this.replay !== null) this.replay.push(Buffer.from(chunk));
    const conn = this.conn;
    if (conn !== null && !conn.writeBody(chunk)) this.stream.pauseBody();
  }

  onBodyEnd(): void {
    this.bodyDone = true;
    const shadows = this.shadows;
    if (shadows !== null) for (const s of shadows) s.bodyEnd();
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
    this.record.addFlag(FLAG.DOWNSTREAM_CONNECTION_TERMINATION);
    this.record.responseCodeDetails = 'downstream_remote_disconnect';
    this.httpStats.downstream_rq_rx_reset.inc();
    this.cluster.stats.upstream_rq_tx_reset.inc();
    this.finish();
    this.abortUpstream();
    const shadows = this.shadows;
    if (shadows !== null && this.stream.hasBody) for (const s of shadows) s.giveUp();
  }

  // ---- internals

  onTimeout(): void {
    if (this.finished) return;
    this.cluster.stats.upstream_rq_timeout.inc();
    if (this.host) this.host.counters.rq_timeout++;
    if (this.rqOpen) this.host?.outlier?.localOriginFailure(true);
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
    if (this.retried && r.retryable) this.limitExceeded = true;
    record.upstreamTransportFailureReason = err.transportReason;
    record.responseCodeDetails = r.details;
    if (this.responseStarted || this.stream.headersSent) {
      // Mid-body failure: reset, never append text.
      this.finish();
      this.stream.reset();
      return;
    }
    // Reply first so the logged record carries the local reply's status.
    sendRescue(this.stream, record, { ...r, flags: FLAG.NONE });
    this.finish();
  }

  private finish(now = performance.now()): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.clearPerTry();
    this.endRetry();
    if (this.limitExceeded) this.record.addFlag(FLAG.UPSTREAM_RETRY_LIMIT_EXCEEDED);
    completeRequest(this.ctx, this.httpStats, this.record, now);
  }
}

function onRouteTimeout(ex: ForwardExchange): void {
  ex.onTimeout();
}

function retryAttempt(ex: ForwardExchange): void {
  ex.retry();
}

function priorityOf(h: UpstreamHost): number {
  return h.priority;
}

function onFaultDelayed(ex: ForwardExchange): void {
  ex.afterDelay();
}

function onPerTryTimeout(ex: ForwardExchange): void {
  ex.onPerTryTimeout();
}
