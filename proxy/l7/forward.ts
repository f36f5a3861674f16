// One proxied HTTP exchange: the undici dispatch handler that streams the upstream response to the
// downstream ServerResponse with backpressure both ways, retries connect failures as Istio's
// default retry policy does, and completes the access-log record. One object per request holds all
// state (fields initialised in the constructor); its methods are the handler callbacks.
//
// After the response has started, an upstream failure resets the downstream connection; it never
// appends text to a truncated body (STYLE.md rule 12).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import type { ForwardAction } from '../../config/compile/snapshot';
import { ProxyError, ProxyErrorCode, rescue, type ProxyErrorCodeValue } from '../errors';
import type { AccessLogRecord } from '../observe/access-log-record';
import type { HttpStats } from '../observe/stats';
import type { UpstreamCluster, OriginalDestination } from '../upstream/cluster';
import type { UpstreamHost } from '../upstream/host';
import type { PickContext } from '../upstream/lb';
import { downstreamResponseHeaders } from './headers';
import { sendRescue } from './local-reply';

type Controller = Parameters<NonNullable<Dispatcher.DispatchHandler['onRequestStart']>>[0];

/** Istio's default retry when a route sets none: 2 retries on connect-failure (ENVOY-ISTIO.md §3.7). */
const DEFAULT_RETRY_ATTEMPTS = 2;

export class ForwardExchange implements Dispatcher.DispatchHandler {
  private readonly req: IncomingMessage;
  private readonly res: ServerResponse;
  private readonly record: AccessLogRecord;
  private readonly cluster: UpstreamCluster;
  private readonly action: ForwardAction;
  private readonly httpStats: HttpStats;
  private readonly path: string;
  private readonly headers: string[];
  private readonly hasBody: boolean;
  private readonly pickCtx: PickContext;
  private readonly originalDst: OriginalDestination | null;
  private readonly sni: string | null;
  private readonly onDone: (record: AccessLogRecord) => void;
  private host: UpstreamHost | null = null;
  /** An upstream request is counted active (rq_active gauges) until this goes false. */
  private rqOpen = false;
  private controller: Controller | null = null;
  private attemptsLeft: number;
  private responseStarted = false;
  /** At least one retry ran: a final connect failure is then logged `UF,URX`, as Envoy does. */
  private retried = false;
  private finished = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly onDrain: () => void;
  private readonly onBodyChunk: (chunk: Buffer) => void;
  private countingBody = false;

  constructor(init: {
    req: IncomingMessage; res: ServerResponse; record: AccessLogRecord; cluster: UpstreamCluster; action: ForwardAction;
    httpStats: HttpStats; path: string; headers: string[]; hasBody: boolean; pickCtx: PickContext;
    originalDst: OriginalDestination | null; sni: string | null; onDone: (record: AccessLogRecord) => void;
  }) {
    this.req = init.req;
    this.res = init.res;
    this.record = init.record;
    this.cluster = init.cluster;
    this.action = init.action;
    this.httpStats = init.httpStats;
    this.path = init.path;
    this.headers = init.headers;
    this.hasBody = init.hasBody;
    this.pickCtx = init.pickCtx;
    this.originalDst = init.originalDst;
    this.sni = init.sni;
    this.onDone = init.onDone;
    this.attemptsLeft = init.action.retry === null ? DEFAULT_RETRY_ATTEMPTS : init.action.retry.attempts;
    this.onDrain = this.resume.bind(this);
    this.onBodyChunk = this.countBody.bind(this);
    this.record.upstreamCluster = this.cluster.name;
  }

  start(): void {
    this.res.once('close', this.onDownstreamClose.bind(this));
    if (this.action.timeoutMs > 0) this.timer = setTimeout(this.onTimeout.bind(this), this.action.timeoutMs);
    this.attempt();
  }

  private attempt(): void {
    const cluster = this.cluster;
    const host = cluster.pick(this.pickCtx, this.originalDst);
    if (host === null) {
      cluster.stats.upstream_cx_none_healthy.inc();
      this.fail(new ProxyError(ProxyErrorCode.NO_HEALTHY_UPSTREAM, cluster.noHostsReason ?? 'no healthy upstream'));
      return;
    }
    this.host = host;
    this.record.upstreamHost = host.key;
    cluster.stats.upstream_rq_total.inc();
    cluster.stats.upstream_rq_active.inc();
    host.counters.rq_total++;
    host.counters.rq_active++;
    this.rqOpen = true;
    cluster.pool(host, this.sni).dispatch(
      {
        origin: 'http://' + host.key,
        path: this.path,
        method: this.req.method ?? 'GET',
        headers: this.headers,
        body: this.hasBody ? this.req : null,
        headersTimeout: 0,
        bodyTimeout: 0,
      },
      this,
    );
  }

  // ---- undici handler callbacks

  onRequestStart(controller: Controller): void {
    this.controller = controller;
    // Count request body bytes only now: a 'data' listener added before undici attaches its own
    // would start the stream flowing and lose the bytes that arrive before the upstream connects.
    if (this.hasBody && !this.countingBody) {
      this.countingBody = true;
      this.req.on('data', this.onBodyChunk);
    }
    if (this.finished) controller.abort(new ProxyError(ProxyErrorCode.DOWNSTREAM_DISCONNECT, 'downstream went away'));
  }

  onResponseStart(controller: Controller, statusCode: number, headers: Record<string, string | string[]>): void {
    if (statusCode < 200) return; // 1xx informational: not forwarded by this HTTP/1.1 path
    const res = this.res;
    if (res.destroyed) {
      controller.abort(new ProxyError(ProxyErrorCode.DOWNSTREAM_DISCONNECT, 'downstream went away'));
      return;
    }
    this.responseStarted = true;
    const record = this.record;
    record.responseCode = statusCode;
    record.responseCodeDetails = 'via_upstream';
    const serviceTime = Math.round(performance.now() - record.startHr);
    record.upstreamServiceTimeMs = serviceTime;
    const out = downstreamResponseHeaders(headers, this.action.responseHeaders);
    out['x-envoy-upstream-service-time'] = String(serviceTime);
    res.writeHead(statusCode, out);
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    this.record.bytesSent += chunk.length;
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', this.onDrain);
    }
  }

  onResponseEnd(): void {
    const cluster = this.cluster;
    const host = this.host!;
    this.endRequestStats();
    host.counters.rq_success++;
    cluster.stats.upstream_rq_completed.inc();
    cluster.stats.responseCode(this.record.responseCode);
    cluster.stats.upstream_rq_time.record(performance.now() - this.record.startHr);
    this.finish();
    this.res.end();
  }

  onResponseError(_controller: Controller, err: Error): void {
    if (this.finished) {
      this.endRequestStats();
      return;
    }
    this.endRequestStats();
    const code = classifyUpstreamError(err, this.responseStarted);
    const host = this.host;
    if (host !== null) host.counters.rq_error++;
    if (code === ProxyErrorCode.UPSTREAM_CONNECT || code === ProxyErrorCode.UPSTREAM_CONNECT_TIMEOUT || code === ProxyErrorCode.UPSTREAM_TLS) {
      if (this.attemptsLeft > 0 && !this.req.readableDidRead) {
        this.attemptsLeft--;
        this.retried = true;
        // Envoy's default retry back-off base interval is 25 ms.
        setTimeout(this.attempt.bind(this), 25).unref();
        return;
      }
    }
    if (code === ProxyErrorCode.UPSTREAM_RESET || code === ProxyErrorCode.UPSTREAM_RESET_AFTER_RESPONSE) this.cluster.stats.upstream_rq_rx_reset.inc();
    this.fail(err instanceof ProxyError && err.code === code ? err : new ProxyError(code, err.message, { cause: err, transportReason: err instanceof ProxyError ? err.transportReason : null }));
  }

  // ---- internals

  private countBody(chunk: Buffer): void {
    this.record.bytesReceived += chunk.length;
  }

  private resume(): void {
    if (this.controller !== null && !this.finished) this.controller.resume();
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
    if (this.responseStarted) {
      // Mid-body failure: reset, never append text (STYLE.md rule 12).
      this.finish();
      this.res.destroy();
      return;
    }
    // Reply first so the logged record carries the local reply's status.
    sendRescue(this.res, record, { ...r, flags: '' });
    this.finish();
  }

  private onTimeout(): void {
    if (this.finished) return;
    this.cluster.stats.upstream_rq_timeout.inc();
    if (this.host) this.host.counters.rq_timeout++;
    const controller = this.controller;
    this.fail(new ProxyError(ProxyErrorCode.UPSTREAM_TIMEOUT, 'route timeout'));
    if (controller !== null) controller.abort(new ProxyError(ProxyErrorCode.UPSTREAM_TIMEOUT, 'route timeout'));
  }

  private onDownstreamClose(): void {
    if (this.finished) return;
    // The client went away before the exchange completed: Envoy logs DC; the upstream is cancelled.
    this.record.addFlag('DC');
    this.record.responseCodeDetails = 'downstream_remote_disconnect';
    this.httpStats.downstream_rq_rx_reset.inc();
    this.cluster.stats.upstream_rq_tx_reset.inc();
    this.finish();
    if (this.controller !== null) this.controller.abort(new ProxyError(ProxyErrorCode.DOWNSTREAM_DISCONNECT, 'downstream went away'));
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.onDone(this.record);
  }
}

function classifyUpstreamError(err: Error, responseStarted: boolean): ProxyErrorCodeValue {
  if (err instanceof ProxyError) return err.code;
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (responseStarted) return ProxyErrorCode.UPSTREAM_RESET_AFTER_RESPONSE;
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return ProxyErrorCode.UPSTREAM_TIMEOUT;
  if (code.startsWith('HPE_') || code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') return ProxyErrorCode.UPSTREAM_PROTOCOL;
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return ProxyErrorCode.UPSTREAM_CONNECT_TIMEOUT;
  if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return ProxyErrorCode.UPSTREAM_CONNECT;
  return ProxyErrorCode.UPSTREAM_RESET;
}
