// Opening one upstream connection (TCP, optionally TLS-originated) with Envoy's cluster stats:
// upstream_cx_total when the connection is created (failures included, as Envoy counts them),
// upstream_cx_connect_fail / _connect_timeout, upstream_cx_active, upstream_cx_connect_ms, and on
// close upstream_cx_destroy(_local|_remote), upstream_cx_length_ms and the byte totals.
//
// The connect timer is one setTimeout per connection (not per request or chunk), cleared on
// connect. TLS uses the cluster's prebuilt SecureContext and its session cache (PERFORMANCE.md §5).

import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { ProxyError, ProxyErrorCode, connectErrorCode } from '../errors';
import type { ClusterStats } from '../observe/stats';
import { slotOf } from '../socket-slot';
import type { UpstreamHost } from './host';

export interface TlsOrigination {
  readonly secureContext: tls.SecureContext;
  readonly rejectUnauthorized: boolean;
  readonly alpn: readonly string[];
  /** Verifies the peer certificate beyond the CA chain (SAN list); undefined = Node's hostname check. */
  readonly checkServerIdentity: ((host: string, cert: tls.PeerCertificate) => Error | undefined) | undefined;
  readonly sessions: Map<string, Buffer>;
  /**
   * The upstream verifies a client certificate (DR MUTUAL / ISTIO_MUTUAL). In TLS 1.3 the client's
   * handshake completes before the server has judged the client's certificate; its verdict (a session
   * ticket, or an alert such as certificate_required) arrives one flight later. With this set, a new
   * TLS 1.3 connection is handed over only once that verdict is in, so a refused certificate is a
   * connect failure (503 UF + UPSTREAM_TRANSPORT_FAILURE_REASON, retried) and not a reset mid-request.
   */
  readonly awaitPeerVerdict: boolean;
}

/**
 * Upper bound (ms) on waiting for a mutual-TLS server's verdict after our TLS 1.3 Finished. Servers
 * that verify client certificates (Envoy, sluice, Node, Go, nginx) send their tickets at once; one that
 * sends none costs this much on each new connection and then works as before.
 */
const PEER_VERDICT_MAX_MS = 250;

export type ConnectCallback = (err: ProxyError | null, socket: net.Socket | null) => void;

/** Per-connection bookkeeping, one object, fields set in the constructor (no closures per chunk). */
export class UpstreamConnection {
  readonly stats: ClusterStats;
  readonly host: UpstreamHost;
  readonly startHr: number;
  readonly tcp: net.Socket;
  socket: net.Socket;
  timer: NodeJS.Timeout | null = null;
  /** TLS: cache key of this connection's session (the SNI, else the host) */
  sessionKey = '';
  tls: TlsOrigination | null = null;
  /** handshake done, waiting for the mutual-TLS server's verdict (see awaitPeerVerdict) */
  awaitingVerdict = false;
  cb: ConnectCallback | null;
  connected = false;
  closedLocally = false;

  constructor(stats: ClusterStats, host: UpstreamHost, tcp: net.Socket, cb: ConnectCallback) {
    this.stats = stats;
    this.host = host;
    this.tcp = tcp;
    this.socket = tcp;
    this.cb = cb;
    this.startHr = performance.now();
  }

  fail(err: ProxyError): void {
    this.clearTimer();
    const cb = this.cb;
    this.cb = null;
    if (cb === null) return;
    if (err.code === ProxyErrorCode.UPSTREAM_CONNECT_TIMEOUT) this.stats.upstream_cx_connect_timeout.inc();
    this.stats.upstream_cx_connect_fail.inc();
    this.host.counters.cx_connect_fail++;
    this.host.healthy = false;
    this.closedLocally = true;
    // A session the server no longer accepts would fail every later attempt the same way.
    if (this.tls !== null && err.code === ProxyErrorCode.UPSTREAM_TLS) this.tls.sessions.delete(this.sessionKey);
    this.socket.destroy();
    cb(err, null);
  }

  /** A cleared Timeout still referenced from here would stay in memory for the connection's life. */
  private clearTimer(): void {
    if (this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
  }

  ready(): void {
    this.clearTimer();
    const cb = this.cb;
    this.cb = null;
    if (cb === null) return;
    this.connected = true;
    this.host.healthy = true;
    this.stats.upstream_cx_connect_ms.record(performance.now() - this.startHr);
    cb(null, this.socket);
  }
}

// Socket and timer handlers are shared by every connection (socket-slot.ts says why): a socket
// listener gets the socket as `this` and finds its UpstreamConnection in the socket's slot.

function onConnectTimeout(conn: UpstreamConnection): void {
  conn.timer = null;
  conn.fail(new ProxyError(ProxyErrorCode.UPSTREAM_CONNECT_TIMEOUT, `connect to ${conn.host.key} timed out`, { transportReason: 'connection_timeout' }));
}

function onTcpError(this: net.Socket, err: NodeJS.ErrnoException): void {
  const conn = slotOf(this).connection!;
  if (conn.cb !== null) {
    const code = connectErrorCode(err);
    const reason = code === ProxyErrorCode.UPSTREAM_TLS ? 'TLS_error:' + (err.code ?? err.message) : (err.code ?? err.message);
    if (code === ProxyErrorCode.UPSTREAM_TLS) countTlsFailure(conn.stats, err);
    conn.fail(new ProxyError(code === ProxyErrorCode.DNS_FAILED ? ProxyErrorCode.UPSTREAM_CONNECT : code, `connect to ${conn.host.key} failed: ${err.message}`, { cause: err, transportReason: reason }));
  }
  // After connect, errors are the owner's to handle (relay / HTTP pool); 'close' does the accounting.
}

function onTcpClose(this: net.Socket): void {
  const conn = slotOf(this).connection!;
  const s = conn.stats;
  s.upstream_cx_active.dec();
  conn.host.counters.cx_active--;
  s.upstream_cx_destroy.inc();
  if (conn.closedLocally || conn.tcp.destroyed && !conn.tcp.readableEnded) s.upstream_cx_destroy_local.inc();
  else s.upstream_cx_destroy_remote.inc();
  s.upstream_cx_rx_bytes_total.add(conn.tcp.bytesRead);
  s.upstream_cx_tx_bytes_total.add(conn.tcp.bytesWritten);
  if (conn.connected) s.upstream_cx_length_ms.record(performance.now() - conn.startHr);
  if (conn.cb !== null) conn.fail(new ProxyError(ProxyErrorCode.UPSTREAM_CONNECT, `connection to ${conn.host.key} closed during connect`, { transportReason: 'connection_termination' }));
}

function onTcpConnect(this: net.Socket): void {
  slotOf(this).connection!.ready();
}

/** Failures of our own check of the server's certificate (Node's X509 verification codes). */
const VERIFY_ERROR = /^(UNABLE_TO_|CERT_|SELF_SIGNED_|DEPTH_ZERO_|INVALID_CA|PATH_LENGTH_|ERR_SSL_CERTIFICATE_VERIFY_FAILED)/;

function countTlsFailure(stats: ClusterStats, err: NodeJS.ErrnoException): void {
  const code = err.code ?? '';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'ERR_SLUICE_SAN_MISMATCH') stats.ssl_fail_verify_san.inc();
  else if (VERIFY_ERROR.test(code)) stats.ssl_fail_verify_error.inc();
  // Everything else, alerts from the server included (certificate_required, handshake_failure).
  else stats.ssl_connection_error.inc();
}

function onSecureConnect(this: net.Socket): void {
  const conn = slotOf(this).connection!;
  const s = conn.socket as tls.TLSSocket;
  conn.stats.ssl_handshake.inc();
  const reused = s.isSessionReused();
  if (reused) conn.stats.ssl_session_reused.inc();
  // A resumed session carries the certificate the server accepted before: no new verdict to wait for.
  if (conn.tls!.awaitPeerVerdict && !reused && s.getProtocol() === 'TLSv1.3') {
    conn.awaitingVerdict = true;
    if (conn.timer) clearTimeout(conn.timer);
    conn.timer = setTimeout(onVerdictTimeout, PEER_VERDICT_MAX_MS, conn);
    return;
  }
  conn.ready();
}

/** No ticket within the bound: the server accepted us without sending one (or is slow); carry on. */
function onVerdictTimeout(conn: UpstreamConnection): void {
  conn.timer = null;
  conn.awaitingVerdict = false;
  conn.ready();
}

function onVerdict(conn: UpstreamConnection): void {
  conn.ready();
}

/** TLS 1.3 tickets arrive after the handshake (PERFORMANCE.md §5.2); keep the latest per SNI. */
function onSession(this: net.Socket, session: Buffer): void {
  const conn = slotOf(this).connection!;
  const t = conn.tls!;
  if (t.sessions.size > 1000) t.sessions.clear();
  t.sessions.set(conn.sessionKey, session);
  if (conn.awaitingVerdict) {
    // A ticket is the server's "accepted": it is sent only after our certificate and Finished checked out.
    // Hand over on the next turn: this event fires inside OpenSSL's read of the ticket, and bytes
    // written from here are never flushed (seen with Node 20).
    conn.awaitingVerdict = false;
    setImmediate(onVerdict, conn);
  }
}

function onTlsError(this: net.Socket, err: NodeJS.ErrnoException): void {
  const conn = slotOf(this).connection!;
  if (conn.cb === null) return;
  countTlsFailure(conn.stats, err);
  conn.fail(new ProxyError(ProxyErrorCode.UPSTREAM_TLS, `TLS handshake with ${conn.host.key} failed: ${err.message}`, { cause: err, transportReason: 'TLS_error:' + (err.code ?? err.message) }));
}

export interface ConnectOptions {
  readonly connectTimeoutMs: number;
  readonly tls: TlsOrigination | null;
  /** SNI to send when originating TLS; null = none */
  readonly sni: string | null;
  readonly keepalive: { readonly timeMs: number } | null;
}

/**
 * Connect to `host`; `cb` gets a connected (and, with TLS, handshaken) socket or a classified error.
 * `onread` (plain TCP only; see proxy/l4/upstream-reader.ts) makes the socket read into the caller's
 * buffer instead of emitting 'data'.
 */

export function connectUpstream(stats: ClusterStats, host: UpstreamHost, opts: ConnectOptions, cb: ConnectCallback, onread: net.OnReadOpts | null = null): void {
  stats.upstream_cx_total.inc();
  stats.upstream_cx_active.inc();
  host.counters.cx_total++;
  host.counters.cx_active++;
  const t = opts.tls;
  if (onread !== null && t !== null) throw new Error('connectUpstream: onread is for plain TCP upstreams only');
  const tcp = onread === null
    ? net.connect({ host: host.address, port: host.port, noDelay: true, allowHalfOpen: true })
    : net.connect({ host: host.address, port: host.port, noDelay: true, allowHalfOpen: true, onread });
  if (opts.keepalive !== null) tcp.setKeepAlive(true, opts.keepalive.timeMs);
  const conn = new UpstreamConnection(stats, host, tcp, cb);
  slotOf(tcp).connection = conn;
  // 'on', not 'once': these fire at most once, and once() allocates a wrapper per listener.
  tcp.on('close', onTcpClose);
  tcp.on('error', onTcpError);
  if (opts.connectTimeoutMs > 0) conn.timer = setTimeout(onConnectTimeout, opts.connectTimeoutMs, conn);
  if (t === null) {
    tcp.on('connect', onTcpConnect);
    return;
  }
  const sessionKey = opts.sni ?? host.key;
  conn.sessionKey = sessionKey;
  conn.tls = t;
  const options: tls.ConnectionOptions = {
    socket: tcp,
    secureContext: t.secureContext,
    rejectUnauthorized: t.rejectUnauthorized,
    ALPNProtocols: t.alpn.length > 0 ? [...t.alpn] : undefined,
    session: t.sessions.get(sessionKey),
    allowHalfOpen: true,
  } as tls.ConnectionOptions;
  if (opts.sni !== null && !net.isIP(opts.sni)) options.servername = opts.sni;
  if (t.checkServerIdentity !== undefined) options.checkServerIdentity = t.checkServerIdentity;
  const secure = tls.connect(options);
  conn.socket = secure;
  slotOf(secure).connection = conn;
  secure.on('secureConnect', onSecureConnect);
  secure.on('error', onTlsError);
  secure.on('session', onSession);
}
