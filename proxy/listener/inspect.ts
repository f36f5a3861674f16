// First-bytes inspection of an accepted downstream socket, the job of Envoy's tls_inspector and
// http_inspector listener filters: learn "TLS? which SNI / ALPN?" or "HTTP/1.x?" before choosing a
// filter chain, without losing a byte.
//
// Contract for callers:
// - Call only when the filter-chain choice needs it (a TLS/SNI match, or protocol auto-detect).
//   Server-first protocols (MySQL, SMTP, ...) send nothing until the server speaks, so inspecting
//   them would wait for ever: when neither `wantTls` nor `wantHttp`, do NOT call inspect at all.
// - The socket should be created with `allowHalfOpen: true` (the relay needs it anyway).
// - Every byte read is in `Inspection.head`, and nothing else consumed them. Replay them:
//     * opaque TCP / TLS passthrough: pass `head` to `relay(downstream, upstream, head, ...)`, which
//       writes it to the upstream before anything else;
//     * HTTP (and TLS termination): `socket.unshift(head)` before handing the socket to the HTTP
//       parser / `new tls.TLSSocket(socket, ...)`, so they read the bytes as if fresh.
// - On return the socket is paused with none of our listeners left: whoever takes it must attach
//   its handlers, then `resume()` (the relay does). The caller owns the socket from then on, and must
//   keep an 'error' listener on it (the accept path should attach one for the socket's whole life).
// - If the peer half-closes (FIN) before a decision, cb gets what was read (`socket.readableEnded`
//   is then true; the relay honours it). If nothing was read, or the socket errors/closes, cb gets
//   DOWNSTREAM_DISCONNECT. If `maxBytes` or `timeoutMs` is exceeded first, cb gets INSPECT_LIMIT
//   (Envoy closes the connection then; the socket is left to the caller to destroy).
//   `timeoutMs <= 0` waits for ever, as Istio's default protocolDetectionTimeout of 0s does.
//   For TLS, pass `maxBytes >= MAX_HELLO_BYTES` (tls/client-hello.ts), else a large legitimate
//   hello (post-quantum key shares, ECH) hits INSPECT_LIMIT.

import type net from 'node:net';
import { ProxyError, ProxyErrorCode } from '../errors';
import { parseClientHello, HelloInvalidReason } from '../tls/client-hello';
import { clock, type WheelTimer } from '../timer-wheel';

export interface Inspection {
  readonly isTls: boolean;
  readonly sni: string | null;
  readonly alpn: readonly string[] | null; /* for raw: ['http/1.1'] when HTTP/1.x request line detected, else null */
  readonly head: Buffer; /* all bytes read so far, to replay first */
}

export interface InspectOptions {
  readonly wantTls: boolean;
  readonly wantHttp: boolean;
  readonly timeoutMs: number;
  readonly maxBytes: number;
}

export type InspectCallback = (err: ProxyError | null, r: Inspection | null) => void;

const HTTP11_ALPN: readonly string[] = Object.freeze(['http/1.1']);
const EMPTY = Buffer.alloc(0);

// http_inspector's method list; each token followed by SP. Decide as soon as the token + SP is seen.
const HTTP_METHOD_LINES: readonly Buffer[] = ['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE']
  .map((m) => Buffer.from(`${m} `, 'latin1'));

const enum Http { Yes, No, NeedMore }

/** Does `head` start with a known method token + SP? Compares in place, no allocation. */
function detectHttp(head: Buffer): Http {
  let prefixOfSome = false;
  for (const line of HTTP_METHOD_LINES) {
    const n = Math.min(line.length, head.length);
    if (line.compare(head, 0, n, 0, n) !== 0) continue;
    if (head.length >= line.length) return Http.Yes;
    prefixOfSome = true;
  }
  return prefixOfSome ? Http.NeedMore : Http.No;
}

/** What the first bytes say, once they say enough (`decideFirstBytes`). */
export type FirstBytes = Decided
  | { readonly kind: 'undecided' }
  | { readonly kind: 'failed'; readonly code: ProxyError['code']; readonly message: string };

export type Decided = { readonly kind: 'decided'; readonly isTls: boolean; readonly sni: string | null; readonly alpn: readonly string[] | null };

const UNDECIDED: FirstBytes = Object.freeze({ kind: 'undecided' });

function decided(isTls: boolean, sni: string | null, alpn: readonly string[] | null): FirstBytes {
  return { kind: 'decided', isTls, sni, alpn };
}

/**
 * tls_inspector / http_inspector on the bytes read so far; `final`: no more will come (the peer
 * half-closed), so undecided means "opaque".
 */
export function decideFirstBytes(head: Buffer, final: boolean, opts: Pick<InspectOptions, 'wantTls' | 'wantHttp'>): FirstBytes {
  const { wantTls, wantHttp } = opts;
  if (wantTls && head.length > 0 && head[0] === 0x16) {
    const r = parseClientHello(head);
    switch (r.kind) {
      case 'hello':
        return decided(true, r.sni, r.alpn);
      case 'need-more':
        return final ? decided(false, null, null) : UNDECIDED;
      case 'invalid':
        // Like Envoy: an oversize hello closes the connection; a malformed one is "not TLS"
        // (tls_inspector counts tls_not_found and lets the opaque chain take it).
        return r.reason === HelloInvalidReason.TOO_LARGE
          ? { kind: 'failed', code: ProxyErrorCode.INSPECT_LIMIT, message: 'ClientHello too large' }
          : decided(false, null, null);
      case 'not-tls':
        break; // fall through to HTTP detection
    }
  }
  if (wantHttp && head.length > 0) {
    const h = detectHttp(head);
    if (h === Http.NeedMore && !final) return UNDECIDED;
    return decided(false, null, h === Http.Yes ? HTTP11_ALPN : null);
  }
  if (head.length === 0 && !final) return UNDECIDED;
  return decided(false, null, null);
}

/**
 * The contract above, whatever delivers the bytes: a transport (this file's net.Socket one, or
 * inspect-handle.ts's bare handle) feeds `received` / `ended` and reports its own errors through
 * `fail`, and stops delivering in `release`; this class accumulates the head, decides, enforces the
 * byte and time limits and calls back exactly once.
 */
export abstract class FirstBytesInspector<R extends Inspection> implements WheelTimer {
  protected head: Buffer = EMPTY;
  /** the peer half-closed before a decision */
  protected eof = false;
  private done = false;
  /** the inspection's time limit, on the proxy's one clock (timer-wheel.ts) */
  wheelDue = -1;

  constructor(protected readonly opts: InspectOptions, private readonly cb: (err: ProxyError | null, r: R | null) => void) {}

  /** Stop delivering bytes to this inspector. */
  protected abstract release(): void;

  /** The callback's result for a decision on `this.head`. */
  protected abstract result(d: Decided): R;

  protected armTimeout(): void {
    if (this.opts.timeoutMs > 0) clock.schedule(this, this.opts.timeoutMs);
  }

  protected received(chunk: Buffer): void {
    if (this.done) return;
    // The first chunk usually holds everything: keep it as is, copy only when more arrive.
    this.head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
    if (this.decide(false)) return;
    if (this.head.length >= this.opts.maxBytes) this.fail(ProxyErrorCode.INSPECT_LIMIT, `no protocol decision within ${this.opts.maxBytes} bytes`);
  }

  protected ended(): void {
    if (this.done) return;
    this.eof = true;
    if (this.head.length === 0) this.fail(ProxyErrorCode.DOWNSTREAM_DISCONNECT, 'downstream closed before sending anything');
    else this.decide(true);
  }

  /** The time limit passed without a decision. */
  onTimer(): void {
    this.fail(ProxyErrorCode.INSPECT_LIMIT, `no protocol decision within ${this.opts.timeoutMs} ms`);
  }

  /** Not protected only so module-level callbacks (nextTick targets) can call it. */
  fail(code: ProxyError['code'], message: string, cause: Error | null = null): void {
    if (this.done) return;
    this.finish();
    this.cb(new ProxyError(code, message, cause === null ? undefined : { cause }), null);
  }

  /** True when the inspection is over (succeeded or failed). */
  private decide(final: boolean): boolean {
    const d = decideFirstBytes(this.head, final, this.opts);
    if (d.kind === 'undecided') return false;
    if (d.kind === 'failed') {
      this.fail(d.code, d.message);
      return true;
    }
    this.finish();
    this.cb(null, this.result(d));
    return true;
  }

  private finish(): void {
    this.done = true;
    this.release();
    clock.cancel(this);
  }
}

/** The net.Socket transport; one per inspected connection, handlers bound once (no per-chunk closures). */
class Inspector extends FirstBytesInspector<Inspection> {
  private readonly onData = this.received.bind(this);
  private readonly onEnd = this.ended.bind(this);
  private readonly onError = (err: Error): void => this.fail(ProxyErrorCode.DOWNSTREAM_DISCONNECT, 'downstream error during inspection', err);
  private readonly onClose = (): void => this.fail(ProxyErrorCode.DOWNSTREAM_DISCONNECT, 'downstream closed during inspection');

  constructor(private readonly socket: net.Socket, opts: InspectOptions, cb: InspectCallback) {
    super(opts, cb);
  }

  start(): void {
    const s = this.socket;
    if (s.destroyed || s.readableEnded) {
      // Keep the callback asynchronous on every path (callers need not guard against re-entry).
      process.nextTick(failDisconnected, this);
      return;
    }
    s.on('data', this.onData);
    s.on('end', this.onEnd);
    s.on('error', this.onError);
    s.on('close', this.onClose);
    this.armTimeout();
    s.resume();
  }

  protected release(): void {
    const s = this.socket;
    s.pause();
    s.removeListener('data', this.onData);
    s.removeListener('end', this.onEnd);
    s.removeListener('error', this.onError);
    s.removeListener('close', this.onClose);
  }

  protected result(d: Decided): Inspection {
    return { isTls: d.isTls, sni: d.sni, alpn: d.alpn, head: this.head };
  }
}

function failDisconnected(i: Inspector): void {
  i.fail(ProxyErrorCode.DOWNSTREAM_DISCONNECT, 'downstream closed before sending anything');
}

export function inspect(socket: net.Socket, opts: InspectOptions, cb: InspectCallback): void {
  new Inspector(socket, opts, cb).start();
}
