// The downstream side of the HTTP/1.1 fast path: one H1Connection per accepted socket reads heads
// with the strict parser (h1-head.ts), frames request bodies exactly (h1-body.ts) and writes
// responses as one latin1 head string corked together with the first body bytes, so a small
// response leaves in one writev. Requests on a connection are served one at a time, in order:
// pipelined bytes wait in `buf` (the socket is paused only when they pile up), which is what keeps
// responses ordered without a queue.
//
// Every event handler is a method bound once per connection; per request there is one H1Stream.
// The idle timeout is kept on the proxy's one coarse clock (timer-wheel.ts), not a per-socket timer:
// activity writes `lastActive`, and the wheel's timer, when it fires, looks at what is left.
// A protocol error gets 400 (431 for a head over 60 KiB, as Envoy answers) and the connection is
// closed without reading further, so bytes after a bad head are never taken as a second request.

import { STATUS_CODES } from 'node:http';
import type net from 'node:net';
import { BodyDecoder, Framing, endBody, writeBodyChunk } from './h1-body';
import { HeadError, findHeadEnd, parseRequestHead, type RequestHead } from './h1-head';
import { clock, type WheelTimer } from '../timer-wheel';
import { H2_PREFACE } from './h2-preface';
import { NO_BODY, type DownstreamStream, type StreamHandler, type Upgraded } from './stream';

/** Pipelined bytes buffered while a request is in flight before the socket is paused. */
const MAX_BUFFERED = 64 * 1024;
/** Idle downstream connection (no request in flight) is closed after this; heads must arrive within it. */
export const DOWNSTREAM_IDLE_MS = 60_000;
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';

const enum Body { WAIT, DELIVER, DISCARD }

export interface H1Hooks<O> {
  /** a complete, valid request head: route it and answer on `stream` */
  request(owner: O, stream: H1Stream): void;
  /** an invalid head (400) or one too large (431): answer with `reply` and log; the connection closes */
  protocolError(owner: O, status: 400 | 431, reply: (text: string) => void): void;
  /** the head begun on this connection did not complete within request_headers_timeout: answer 408 with `reply` and log */
  headersTimeout(owner: O, reply: (text: string) => void): void;
  closed(owner: O): void;
  /** true while the proxy drains: the response being written closes its connection */
  draining?(owner: O): boolean;
  /**
   * The connection opened with the HTTP/2 preface (h2c prior knowledge, Envoy's codec_type AUTO):
   * the socket and every byte read so far go to the HTTP/2 server.
   */
  http2?(owner: O, socket: net.Socket, head: Buffer): void;
}

const STATUS_LINES: string[] = [];
function statusLine(status: number): string {
  return (STATUS_LINES[status] ??= 'HTTP/1.1 ' + status + ' ' + (STATUS_CODES[status] ?? 'Unknown') + '\r\n');
}

export class H1Stream implements DownstreamStream {
  readonly head: RequestHead;
  readonly hasBody: boolean;
  handler: StreamHandler | null = null;
  bodyStarted = false;
  headersSent = false;
  finished = false;
  readonly protocol = null;
  readonly canTakeOver = true;
  private readonly conn: H1Connection<unknown>;

  constructor(conn: H1Connection<unknown>, head: RequestHead, hasBody: boolean) {
    this.conn = conn;
    this.head = head;
    this.hasBody = hasBody;
  }

  startBody(): void {
    if (!this.finished) this.conn.startBody(Body.DELIVER);
  }
  discardBody(): void {
    if (!this.finished) this.conn.startBody(Body.DISCARD);
  }
  pauseBody(): void {
    if (!this.finished) this.conn.socket.pause();
  }
  resumeBody(): void {
    if (!this.finished) this.conn.socket.resume();
  }
  respond(status: number, headers: readonly string[], length: number): void {
    if (this.finished || this.headersSent) return;
    this.headersSent = true;
    this.conn.respond(status, headers, length);
  }
  write(chunk: Buffer): boolean {
    return this.finished ? true : this.conn.write(chunk);
  }
  writePending(): boolean {
    return this.conn.socket.writableLength > 0;
  }
  end(): void {
    if (this.finished) return;
    this.finished = true;
    this.conn.end();
  }
  closeAfter(): void {
    this.conn.closeAfter();
  }
  reset(): void {
    if (this.finished) return;
    this.finished = true;
    this.conn.socket.destroy();
  }
  cork(): void {
    this.conn.socket.cork();
  }
  uncork(): void {
    this.conn.socket.uncork();
  }
  takeOver(head: string): Upgraded | null {
    if (this.finished || this.headersSent) return null;
    this.finished = true;
    this.headersSent = true;
    return this.conn.takeOver(head);
  }
}

function deliverBody(this: H1Connection<unknown>, chunk: Buffer): void {
  const s = this.stream;
  if (this.bodyMode !== Body.DELIVER || s === null) return;
  s.bodyStarted = true;
  s.handler?.onBodyData(chunk);
}

export class H1Connection<O> implements WheelTimer {
  readonly socket: net.Socket;
  readonly owner: O;
  private readonly hooks: H1Hooks<O>;
  /** bytes read but not yet consumed (the next head, or body bytes before startBody) */
  private buf: Buffer | null = null;
  stream: H1Stream | null = null;
  bodyMode = Body.WAIT;
  private bodyDone = true;
  private readonly decoder = new BodyDecoder();
  /** close once the current response is out (Connection: close, HTTP/1.0, errors, client FIN) */
  private closing = false;
  private processing = false;
  private closed = false;
  /** a request head was parsed on this connection (only the first bytes may be the h2 preface) */
  private served = false;
  // response state
  private pendingHead: string | null = null;
  private chunkedOut = false;
  private bodyOut = true;
  /** clock.now() at the last read or write */
  private lastActive = clock.now();
  /**
   * clock.now() when the first byte of the head now being read arrived; -1 when no head is partly
   * read. Envoy's request_headers_timeout runs from there (a slowloris client's trickle of header
   * lines keeps `lastActive` fresh, so the idle timeout alone never closes it).
   */
  private headStarted = -1;
  private readonly headersTimeoutMs: number;
  wheelDue = -1;
  private readonly onDataBound: (chunk: Buffer) => void;
  private readonly onEndBound: () => void;
  private readonly onDrainBound: () => void;

  /** `headersTimeoutMs`: request_headers_timeout, 0 = none. */
  constructor(socket: net.Socket, owner: O, hooks: H1Hooks<O>, headersTimeoutMs = 0) {
    this.socket = socket;
    this.headersTimeoutMs = headersTimeoutMs;
    this.owner = owner;
    this.hooks = hooks;
    this.onDataBound = this.onData.bind(this);
    this.onEndBound = this.onEnd.bind(this);
    this.onDrainBound = this.onDrain.bind(this);
    socket.on('data', this.onDataBound);
    socket.on('end', this.onEndBound);
    socket.on('close', this.onClose.bind(this));
    socket.on('error', onSocketError);
    socket.on('drain', this.onDrainBound);
    clock.schedule(this, DOWNSTREAM_IDLE_MS);
  }

  private onData(chunk: Buffer): void {
    this.lastActive = clock.now();
    if (this.closed || this.closing && this.stream === null) return;
    if (this.stream !== null && !this.bodyDone && this.bodyMode !== Body.WAIT && this.buf === null) {
      this.feedBody(chunk);
      return;
    }
    if (this.buf === null && this.stream === null && this.headersTimeoutMs > 0) this.headBegins();
    this.buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.stream === null) this.process();
    else if (this.buf.length > MAX_BUFFERED) this.socket.pause();
  }

  private process(): void {
    if (this.processing) return;
    this.processing = true;
    while (this.stream === null && this.buf !== null && !this.closed && !this.closing) {
      const buf = this.buf;
      if (!this.served && buf[0] === 0x50 /* P */ && this.hooks.http2 !== undefined && this.h2Preface(buf)) break;
      const end = findHeadEnd(buf, 0);
      if (end === 0) break;
      if (end < 0) {
        this.protocolError(end === HeadError.TOO_LARGE ? 431 : 400);
        break;
      }
      const head = parseRequestHead(buf, 0, end);
      if (head === null) {
        this.protocolError(400);
        break;
      }
      this.buf = end === buf.length ? null : buf.subarray(end);
      this.headStarted = -1;
      const hasBody = head.chunked || head.contentLength > 0;
      this.decoder.reset(head.chunked ? Framing.CHUNKED : hasBody ? Framing.LENGTH : Framing.NONE, head.contentLength);
      this.bodyDone = !hasBody;
      this.bodyMode = Body.WAIT;
      if (head.close) this.closing = true;
      this.served = true;
      const stream = new H1Stream(this as H1Connection<unknown>, head, hasBody);
      this.stream = stream;
      this.hooks.request(this.owner, stream);
    }
    this.processing = false;
    if (this.stream === null && !this.closed && !this.closing && this.socket.isPaused()) this.socket.resume();
  }

  startBody(mode: Body): void {
    if (this.bodyMode !== Body.WAIT) return;
    this.bodyMode = mode;
    const s = this.stream!;
    if (this.bodyDone) {
      if (mode === Body.DELIVER) s.handler?.onBodyEnd();
      return;
    }
    if (mode === Body.DELIVER && s.head.expectContinue && !s.headersSent) this.socket.write(CONTINUE, 'latin1');
    const b = this.buf;
    if (b !== null) {
      this.buf = null;
      this.feedBody(b);
    }
    if (!this.bodyDone && this.socket.isPaused()) this.socket.resume();
  }

  private feedBody(chunk: Buffer): void {
    const r = this.decoder.decode(chunk, 0, chunk.length, this as H1Connection<unknown>, deliverBody);
    if (r < 0) {
      this.bodyDone = true;
      this.closing = true;
      const s = this.stream;
      if (s === null || s.finished) this.socket.destroy();
      else if (this.bodyMode === Body.DELIVER && s.handler !== null) s.handler.onBodyError();
      else s.reset();
      return;
    }
    if (!this.decoder.done) return;
    this.bodyDone = true;
    if (r < chunk.length) {
      this.buf = chunk.subarray(r);
      if (this.buf.length > MAX_BUFFERED) this.socket.pause();
    }
    const s = this.stream;
    if (s === null) return;
    if (s.finished) this.nextRequest();
    else if (this.bodyMode === Body.DELIVER) s.handler?.onBodyEnd();
  }

  respond(status: number, headers: readonly string[], length: number): void {
    const s = this.stream!;
    const isHead = s.head.method === 'HEAD';
    let text = statusLine(status);
    for (let i = 0; i < headers.length; i += 2) text += headers[i]! + ': ' + headers[i + 1]! + '\r\n';
    this.chunkedOut = false;
    this.bodyOut = !isHead;
    if (status < 200 || status === 204 || status === 304 || length === NO_BODY) {
      this.bodyOut = false;
    } else if (length >= 0) {
      text += 'content-length: ' + length + '\r\n';
    } else if (!isHead) {
      if (s.head.versionMinor === 1) {
        text += 'transfer-encoding: chunked\r\n';
        this.chunkedOut = true;
      } else this.closing = true; // close-delimited for HTTP/1.0
    }
    if (!this.closing && this.hooks.draining?.(this.owner) === true) this.closing = true;
    if (this.closing) text += 'connection: close\r\n';
    this.pendingHead = text + '\r\n';
  }

  write(chunk: Buffer): boolean {
    if (!this.bodyOut || chunk.length === 0) return true;
    this.lastActive = clock.now();
    const head = this.pendingHead;
    this.pendingHead = null;
    return writeBodyChunk(this.socket, head, this.chunkedOut, chunk);
  }

  end(): void {
    this.lastActive = clock.now();
    const head = this.pendingHead;
    this.pendingHead = null;
    endBody(this.socket, head, this.chunkedOut);
    if (!this.bodyDone) {
      // The response is out before the request body: drop the rest of the body. A client that
      // waits for 100 Continue will not send it, so that connection closes instead.
      if (this.bodyMode === Body.WAIT && this.stream!.head.expectContinue) this.closing = true;
      this.bodyMode = Body.DISCARD;
      if (this.closing) {
        this.finishConnection();
        return;
      }
      const b = this.buf;
      this.buf = null;
      if (b !== null) this.feedBody(b);
      else if (this.socket.isPaused()) this.socket.resume();
      return;
    }
    this.nextRequest();
  }

  closeAfter(): void {
    this.closing = true;
  }

  /** True when the connection was handed to HTTP/2 (or must wait for the rest of the preface). */
  private h2Preface(buf: Buffer): boolean {
    const n = Math.min(buf.length, H2_PREFACE.length);
    if (buf.compare(H2_PREFACE, 0, n, 0, n) !== 0) return false;
    if (n < H2_PREFACE.length) return true; // a prefix of the preface so far: wait for more
    this.buf = null;
    this.detach();
    this.closing = true;
    this.hooks.http2!(this.owner, this.socket, buf);
    return true;
  }

  /** Stop reading as HTTP/1.1 ('close' stays ours: the connection stats end when the socket does). */
  private detach(): void {
    const socket = this.socket;
    socket.removeListener('data', this.onDataBound);
    socket.removeListener('end', this.onEndBound);
    socket.removeListener('drain', this.onDrainBound);
    clock.cancel(this);
  }

  /**
   * Write `head` (a 101) and stop being HTTP: the socket, paused, and the bytes the client sent
   * after its request go to the caller (a byte relay). 'close' stays ours, so the connection stats
   * still end when the socket does.
   */
  takeOver(head: string): Upgraded {
    const socket = this.socket;
    this.detach();
    socket.pause();
    const buffered = this.buf;
    this.buf = null;
    this.closing = true;
    socket.write(head, 'latin1');
    return { socket, head: buffered };
  }

  private nextRequest(): void {
    this.stream = null;
    if (this.closing) {
      this.finishConnection();
      return;
    }
    this.process();
    // Pipelined bytes that are only part of the next head: its header timer starts now.
    if (this.stream === null && this.buf !== null && this.headStarted < 0 && this.headersTimeoutMs > 0) this.headBegins();
  }

  private finishConnection(): void {
    this.stream = null;
    this.buf = null;
    this.socket.destroySoon();
  }

  private protocolError(status: 400 | 431): void {
    this.closing = true;
    this.buf = null;
    this.hooks.protocolError(this.owner, status, this.writeAndClose.bind(this));
  }

  private writeAndClose(text: string): void {
    this.socket.write(text, 'latin1');
    this.socket.destroySoon();
  }

  private onEnd(): void {
    const s = this.stream;
    if (s === null || s.finished) {
      this.finishConnection();
      return;
    }
    if (!this.bodyDone) {
      // The client half-closed in the middle of its request: it will not be completed.
      s.finished = true;
      s.handler?.onAbort();
      this.socket.destroy();
      return;
    }
    this.closing = true; // answer this request, then close
  }

  private onClose(): void {
    this.closed = true;
    clock.cancel(this);
    this.buf = null;
    const s = this.stream;
    this.stream = null;
    if (s !== null && !s.finished) {
      s.finished = true;
      s.handler?.onAbort();
    }
    this.hooks.closed(this.owner);
  }

  private onDrain(): void {
    this.stream?.handler?.onDrain();
  }

  /** A head starts (its first bytes, with no request in flight): the header timer starts. */
  private headBegins(): void {
    this.headStarted = clock.now();
    // The connection's one wheel timer serves both deadlines: bring it forward if this one is sooner.
    if (this.headersTimeoutMs < DOWNSTREAM_IDLE_MS) clock.schedule(this, this.headersTimeoutMs);
  }

  /**
   * Two deadlines on one timer. A head begun headersTimeoutMs ago and still not complete: 408 and
   * close (Envoy's request_headers_timeout). No read or write for DOWNSTREAM_IDLE_MS: close unless
   * a request is in flight (its route timeout governs it).
   */
  onTimer(): void {
    const now = clock.now();
    if (this.headStarted >= 0 && this.stream === null && !this.closing && !this.closed) {
      const headLeft = this.headStarted + this.headersTimeoutMs - now;
      if (headLeft <= 0) {
        this.closing = true;
        this.buf = null;
        this.headStarted = -1;
        this.hooks.headersTimeout(this.owner, this.writeAndClose.bind(this));
        return;
      }
      const idleLeft = this.lastActive + DOWNSTREAM_IDLE_MS - now;
      clock.schedule(this, Math.min(headLeft, Math.max(idleLeft, 1)));
      if (idleLeft > 0) return;
    }
    const left = this.lastActive + DOWNSTREAM_IDLE_MS - now;
    if (left > 0) clock.schedule(this, left);
    else if (this.stream === null) this.socket.destroy();
    else clock.schedule(this, DOWNSTREAM_IDLE_MS);
  }
}

function onSocketError(): void {
  // 'close' follows and does the bookkeeping.
}
