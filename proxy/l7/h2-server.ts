// HTTP/2 downstream (RFC 9113) on node:http2 (nghttp2, built into Node): h2c with prior knowledge
// on plain HTTP ports (the connection preface is recognised by the HTTP/1.1 server before it parses
// a head, as Envoy's `codec_type: AUTO` does) and ALPN `h2` on TLS-terminating HTTP ports. Each
// stream becomes a DownstreamStream (H2Stream) and is routed by the same connection manager as an
// HTTP/1.1 request (http-connection.ts routeStream): the same route tables, access log and stats.
//
// nghttp2 does the frame-level protocol and its error handling: a bad preface or a malformed frame
// is a connection error (GOAWAY PROTOCOL_ERROR / FRAME_SIZE_ERROR, RFC 9113 §5.4.1), invalid
// pseudo-headers or connection-specific headers a stream error (RST_STREAM PROTOCOL_ERROR), a
// stream past SETTINGS_MAX_CONCURRENT_STREAMS is refused (RST_STREAM REFUSED_STREAM), and a peer
// that keeps sending invalid frames or rejected streams (the "rapid reset" flood, CVE-2023-44487)
// is sent GOAWAY. Other streams on the connection, and other connections, carry on. Every GOAWAY and
// reset is logged here with its error code; resets are counted in Envoy's `http2.rx_reset` /
// `http2.tx_reset`, frame errors in `http2.rx_messaging_error`.
//
// Limits, Envoy's defaults (envoy.config.core.v3.Http2ProtocolOptions) and what sluice sets:
//   max_concurrent_streams       Envoy 2147483647        sluice 1024 (memory per connection is bounded;
//                                                         Node queues each stream's data in JS)
//   initial_stream_window_size   Envoy 268435456 (256 MiB) sluice 1 MiB: a paused stream (backpressure
//   initial_connection_window    Envoy 268435456          from the upstream) holds at most that much
//                                                         sluice 16 MiB for the connection
//   header list (max_request_headers_kb) Envoy 60 KiB    sluice 60 KiB (maxHeaderListSize), as HTTP/1.1
//   max_frame_size               16384 (the RFC minimum; Envoy does not raise it)   same
//   server push                  disabled (Envoy never pushes)                       disabled
// Node's own flood guards stay at their defaults (maxSessionInvalidFrames 1000,
// maxSessionRejectedStreams 100), Envoy's equivalents being max_outbound_frames and friends.

import http2 from 'node:http2';
import type net from 'node:net';
import tls from 'node:tls';
import { markServerHandshakeDone } from '../transport/tls-established';
import type { ProxyContext } from '../context';
import type { Counter, Gauge, StatsStore } from '../observe/stats';
import { H, RequestHead, headerId } from './h1-head';
import { NO_BODY, type DownstreamStream, type StreamHandler, type Upgraded } from './stream';

export const H2_MAX_CONCURRENT_STREAMS = 1024;
export const H2_STREAM_WINDOW = 1024 * 1024;
export const H2_CONNECTION_WINDOW = 16 * 1024 * 1024;
export const H2_MAX_HEADER_LIST = 60 * 1024;

const C = http2.constants;
const ERROR_NAMES = new Map<number, string>(Object.entries(C).filter(([k]) => k.startsWith('NGHTTP2_') && !k.startsWith('NGHTTP2_FLAG') && !k.startsWith('NGHTTP2_SESSION') && !k.startsWith('NGHTTP2_STREAM') && !k.startsWith('NGHTTP2_NV') && !k.startsWith('NGHTTP2_HCAT') && !k.startsWith('NGHTTP2_ERR') && !k.startsWith('NGHTTP2_DEFAULT') && !k.startsWith('NGHTTP2_SETTINGS') && !k.startsWith('NGHTTP2_INITIAL') && !k.startsWith('NGHTTP2_MAX') && !k.startsWith('NGHTTP2_MIN')).map(([k, v]) => [v as number, k.slice(8)]));

/** An RFC 9113 §7 error code's name (`PROTOCOL_ERROR`...), for logs. */
export function h2ErrorName(code: number): string {
  return ERROR_NAMES.get(code) ?? 'code_' + code;
}

/** Downstream codec stats, rooted at `http2.` as Envoy roots them for downstream connections. */
export class Http2Stats {
  readonly rx_reset: Counter;
  readonly tx_reset: Counter;
  readonly rx_messaging_error: Counter;
  readonly streams_active: Gauge;
  constructor(store: StatsStore, prefix: string) {
    this.rx_reset = store.counter(prefix + 'rx_reset');
    this.tx_reset = store.counter(prefix + 'tx_reset');
    this.rx_messaging_error = store.counter(prefix + 'rx_messaging_error');
    this.streams_active = store.gauge(prefix + 'streams_active');
  }
}

const statsByStore = new WeakMap<StatsStore, Http2Stats>();
export function downstreamHttp2Stats(store: StatsStore): Http2Stats {
  let s = statsByStore.get(store);
  if (s === undefined) statsByStore.set(store, (s = new Http2Stats(store, 'http2.')));
  return s;
}

/** What a connection's streams are routed with (kept by the caller; opaque here). */
export interface H2Owner {
  readonly ctx: ProxyContext;
}
export type RouteH2Stream<O extends H2Owner> = (owner: O, stream: H2Stream) => void;

let server: http2.Http2Server | null = null;
let nextSession: ((s: http2.ServerHttp2Session) => void) | null = null;

/** One node:http2 server for the process: it only turns sockets into sessions (it never listens). */
function sessionFactory(): http2.Http2Server {
  if (server !== null) return server;
  server = http2.createServer({
    settings: {
      enablePush: false,
      maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS,
      initialWindowSize: H2_STREAM_WINDOW,
      maxHeaderListSize: H2_MAX_HEADER_LIST,
    },
    maxHeaderListPairs: 128,
  });
  server.on('session', (s: http2.ServerHttp2Session) => {
    const cb = nextSession;
    nextSession = null;
    cb?.(s);
  });
  return server;
}

/**
 * Serve HTTP/2 on `socket` (its first bytes, already read, unshifted back first). `route` is called
 * once per request stream.
 */
export function serveH2<O extends H2Owner>(socket: net.Socket, head: Buffer | null, owner: O, route: RouteH2Stream<O>): void {
  const stats = downstreamHttp2Stats(owner.ctx.stats);
  const log = owner.ctx.log;
  socket.pause();
  if (head !== null && head.length > 0) socket.unshift(head);
  if (socket instanceof tls.TLSSocket) markServerHandshakeDone(socket);
  nextSession = (session) => {
    session.setLocalWindowSize(H2_CONNECTION_WINDOW);
    session.on('stream', (s: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, rawHeaders: string[]) => {
      const stream = new H2Stream(s, headers, rawHeaders, (flags & C.NGHTTP2_FLAG_END_STREAM) !== 0, stats, log);
      route(owner, stream);
      // Draining (ProxyContext.draining): GOAWAY once this and the other open streams are done, as
      // an HTTP/1.1 response closes its connection then.
      if (owner.ctx.draining && !session.closed) session.close();
    });
    session.on('goaway', (code: number, lastStreamId: number) => {
      log.info({ code: h2ErrorName(code), lastStreamId, by: 'peer' }, 'http2 GOAWAY received');
    });
    session.on('frameError', (type: number, code: number, id: number) => {
      stats.rx_messaging_error.inc();
      log.info({ frameType: type, code: h2ErrorName(code), streamId: id }, 'http2 frame error');
    });
    session.on('error', (err: Error & { code?: string }) => {
      // A connection error Node reports (nghttp2 has sent or is sending GOAWAY); the session closes.
      // Not every GOAWAY nghttp2 sends surfaces here, so no goaway_sent counter pretends to count them.
      log.info({ err: err.message, code: err.code }, 'http2 connection error (GOAWAY sent)');
    });
    // Node destroys the socket when the session ends; the HTTP/1.1 side's 'close' listener counts it.
  };
  sessionFactory().emit('connection', socket);
  if (nextSession !== null) {
    // Node did not make a session (it cannot happen on a net.Socket or an h2 TLS socket): close.
    nextSession = null;
    socket.destroy();
  }
}

function onStreamError(): void {
  // 'close' follows with the reset code; H2Stream.onClose reports it.
}

/** One HTTP/2 request stream as the connection manager sees it. */
export class H2Stream implements DownstreamStream {
  readonly head: RequestHead;
  readonly hasBody: boolean;
  readonly canTakeOver = false;
  readonly protocol = 'HTTP/2';
  handler: StreamHandler | null = null;
  bodyStarted = false;
  headersSent = false;
  finished = false;
  private readonly s: http2.ServerHttp2Stream;
  private readonly stats: Http2Stats;
  private readonly log: ProxyContext['log'];
  private bodyWanted = false;
  private pendingTrailers: http2.OutgoingHttpHeaders | null = null;

  constructor(s: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: readonly string[], endStream: boolean, stats: Http2Stats, log: ProxyContext['log']) {
    this.s = s;
    this.stats = stats;
    this.log = log;
    this.head = headFromH2(headers, rawHeaders, endStream);
    this.hasBody = !endStream;
    stats.streams_active.inc();
    s.on('error', onStreamError);
    s.on('close', this.onClose.bind(this));
    s.on('drain', this.onDrain.bind(this));
  }

  startBody(): void {
    if (this.finished) return;
    if (!this.hasBody) {
      this.handler?.onBodyEnd();
      return;
    }
    this.bodyWanted = true;
    this.s.on('data', this.onData.bind(this));
    this.s.on('end', this.onEnd.bind(this));
  }
  discardBody(): void {
    if (!this.bodyWanted) this.s.resume();
  }
  pauseBody(): void {
    this.s.pause();
  }
  resumeBody(): void {
    this.s.resume();
  }
  respond(status: number, headers: readonly string[], length: number): void {
    if (this.finished || this.headersSent || this.s.destroyed) return;
    this.headersSent = true;
    const out: http2.OutgoingHttpHeaders = { ':status': status };
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!.toLowerCase();
      const prev = out[name];
      out[name] = prev === undefined ? headers[i + 1]! : Array.isArray(prev) ? [...prev, headers[i + 1]!] : [String(prev), headers[i + 1]!];
    }
    if (length >= 0) out['content-length'] = length;
    const noBody = length === NO_BODY || this.head.method === 'HEAD' || status === 204 || status === 304;
    // gRPC ends every response with trailers (grpc-status): wait for them, unless this is a
    // trailers-only response (no body: its status is already in these headers).
    const waitForTrailers = !noBody && length !== 0 && String(out['content-type'] ?? '').startsWith('application/grpc');
    if (waitForTrailers) this.s.once('wantTrailers', this.onWantTrailers.bind(this));
    this.s.respond(out, { endStream: noBody, waitForTrailers });
    if (noBody) this.finished = true;
  }
  write(chunk: Buffer): boolean {
    if (this.finished || this.s.destroyed) return true;
    // A copy: the caller's bytes are borrowed from an upstream read buffer (response-reader.ts),
    // and nghttp2 reads a queued DATA payload later than the write call.
    return this.s.write(Buffer.from(chunk));
  }
  writePending(): boolean {
    return false;
  }
  end(): void {
    if (this.finished) return;
    this.finished = true;
    if (!this.s.destroyed) this.s.end();
  }
  trailers(fields: readonly string[]): void {
    const t: http2.OutgoingHttpHeaders = {};
    for (let i = 0; i < fields.length; i += 2) t[fields[i]!.toLowerCase()] = fields[i + 1]!;
    this.pendingTrailers = t;
  }
  private onWantTrailers(): void {
    if (!this.s.destroyed) this.s.sendTrailers(this.pendingTrailers ?? {});
  }
  closeAfter(): void {
    // Per-stream: the connection stays for its other streams.
  }
  reset(): void {
    if (this.finished && this.s.destroyed) return;
    this.finished = true;
    if (!this.s.destroyed) {
      this.stats.tx_reset.inc();
      this.s.close(C.NGHTTP2_INTERNAL_ERROR);
    }
  }
  cork(): void {}
  uncork(): void {}
  takeOver(): Upgraded | null {
    return null;
  }

  private onData(chunk: Buffer): void {
    this.bodyStarted = true;
    this.handler?.onBodyData(chunk);
  }
  private onEnd(): void {
    this.handler?.onBodyEnd();
  }
  private onDrain(): void {
    this.handler?.onDrain();
  }
  private onClose(): void {
    this.stats.streams_active.dec();
    const code = this.s.rstCode;
    if (this.finished && code === C.NGHTTP2_NO_ERROR) return;
    if (code !== undefined && code !== C.NGHTTP2_NO_ERROR) {
      this.stats.rx_reset.inc();
      this.log.debug({ code: h2ErrorName(code), streamId: this.s.id }, 'http2 stream reset');
    }
    if (this.finished) return;
    this.finished = true;
    this.handler?.onAbort();
  }
}

/** The request head the connection manager routes on, from a HEADERS frame's fields. */
function headFromH2(headers: http2.IncomingHttpHeaders, raw: readonly string[], endStream: boolean): RequestHead {
  const h = new RequestHead();
  h.method = String(headers[':method'] ?? 'GET');
  h.target = String(headers[':method'] === 'CONNECT' ? headers[':authority'] ?? '' : headers[':path'] ?? '');
  h.versionMinor = 1;
  const authority = headers[':authority'];
  let cookie: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.charCodeAt(0) === 0x3a /* : */) continue;
    const value = raw[i + 1]!;
    if (name === 'cookie') {
      // Cookies may be split across fields in HTTP/2 (RFC 9113 §8.2.3): HTTP/1.1 wants one line.
      cookie = cookie === null ? value : cookie + '; ' + value;
      continue;
    }
    const id = headerId(name);
    h.raw.push(name, value);
    h.ids.push(id);
    if (id === H.HOST) h.host ??= value;
    else if (id === H.CONTENT_LENGTH) h.contentLength = Number(value);
    else if (id === H.USER_AGENT) h.userAgent ??= value;
    else if (id === H.X_REQUEST_ID) h.requestId ??= value;
    else if (id === H.X_FORWARDED_FOR) h.xff = h.xff === null ? value : h.xff + ', ' + value;
    else if (id === H.X_FORWARDED_PROTO) h.xfp ??= value;
  }
  if (cookie !== null) {
    h.raw.push('cookie', cookie);
    h.ids.push(H.OTHER);
  }
  if (typeof authority === 'string') {
    // :authority is the request's host (RFC 9113 §8.3.1) and wins over a Host field; the HTTP/1.1
    // upstream gets it as Host.
    const at = h.ids.indexOf(H.HOST);
    if (at < 0) {
      h.raw.push('host', authority);
      h.ids.push(H.HOST);
    } else h.raw[at * 2 + 1] = authority;
    h.host = authority;
  }
  // A body of unknown length goes to an HTTP/1.1 upstream chunked.
  if (!endStream && h.contentLength < 0) h.chunked = true;
  return h;
}
