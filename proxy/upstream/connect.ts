// Opening one upstream connection (TCP, optionally TLS-originated) on net.Sockets with Envoy's
// cluster stats, counted by cx-accounting.ts as the bare-handle connector (handle-connect.ts) counts.
//
// The connect timer is on the proxy's one clock (timer-wheel.ts), one per connection (not per
// request or chunk), cancelled on connect. TLS uses the cluster's prebuilt SecureContext and its session cache.
//
// A TLS connection is one TLSSocket that opens its own TCP connection (tls.connect with host and
// port), not a net.Socket wrapped afterwards: one socket object per connection instead of two, and
// only such a TLSSocket honours `onread`, so HTTP responses are read into the pool's own buffer as
// on plain TCP. Its byte totals are the TCP connection's (handshake and record overhead included),
// read from the handle under the TLS layer.

import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { ProxyError, ProxyErrorCode, connectErrorCode } from '../errors';
import type { ClusterStats } from '../observe/stats';
import { setKeepAliveProbes } from '../transport/original-dst';
import { slotOf } from '../transport/socket-slot';
import { clock, type WheelTimer } from '../timer-wheel';
import { wireOf, type ByteCounters } from '../transport/tls-internals';
import { countClosed, countConnected, countConnectFailure, countOpened } from './cx-accounting';
import { resumableSession, type TlsOrigination } from '../tls/origination';

export type { TlsOrigination } from '../tls/origination';
import type { UpstreamHost } from './host';

declare module '../transport/socket-slot' {
  interface SocketSlot {
    /** an upstream connection's bookkeeping */
    connection: UpstreamConnection | null;
  }
}


/**
 * Upper bound (ms) on waiting for a mutual-TLS server's verdict after our TLS 1.3 Finished. Servers
 * that verify client certificates (Envoy, sluice, Node, Go, nginx) send their tickets at once; one that
 * sends none costs this much on each new connection and then works as before.
 */
const PEER_VERDICT_MAX_MS = 250;

export type ConnectCallback = (err: ProxyError | null, socket: net.Socket | null) => void;

/** Per-connection bookkeeping, one object, fields set in the constructor (no closures per chunk). */
export class UpstreamConnection implements WheelTimer {
  readonly stats: ClusterStats;
  readonly host: UpstreamHost;
  readonly startHr: number;
  /** the connection's socket: TCP, or TLS over a TCP connection of its own */
  readonly socket: net.Socket;
  /** TLS: the TCP handle under the TLS layer, whose byte counters are the wire's */
  wire: ByteCounters | null = null;
  /** TLS: the TCP connection is up (errors from here on are the handshake's) */
  tcpUp = false;
  wheelDue = -1;
  keepalive: ConnectOptions['keepalive'] = null;
  /** TLS: cache key of this connection's session (the SNI, else the host) */
  sessionKey = '';
  tls: TlsOrigination | null = null;
  /** handshake done, waiting for the mutual-TLS server's verdict (see awaitPeerVerdict) */
  awaitingVerdict = false;
  cb: ConnectCallback | null;
  connected = false;
  closedLocally = false;

  constructor(stats: ClusterStats, host: UpstreamHost, socket: net.Socket, cb: ConnectCallback) {
    this.stats = stats;
    this.host = host;
    this.socket = socket;
    this.cb = cb;
    this.startHr = performance.now();
  }

  fail(err: ProxyError): void {
    this.clearTimer();
    const cb = this.cb;
    this.cb = null;
    if (cb === null) return;
    countConnectFailure(this.stats, this.host, err);
    this.closedLocally = true;
    // A session the server no longer accepts would fail every later attempt the same way.
    if (this.tls !== null && err.code === ProxyErrorCode.UPSTREAM_TLS) this.tls.sessions.delete(this.sessionKey);
    this.socket.destroy();
    cb(err, null);
  }

  private clearTimer(): void {
    clock.cancel(this);
  }

  /** The connect timeout, or (awaitingVerdict) the bound on the mutual-TLS server's verdict. */
  onTimer(): void {
    if (this.awaitingVerdict) {
      // No ticket within the bound: the server accepted us without sending one (or is slow); carry on.
      this.awaitingVerdict = false;
      this.ready();
      return;
    }
    this.fail(new ProxyError(ProxyErrorCode.UPSTREAM_CONNECT_TIMEOUT, `connect to ${this.host.key} timed out`, { transportReason: 'connection_timeout' }));
  }

  ready(): void {
    this.clearTimer();
    const cb = this.cb;
    this.cb = null;
    if (cb === null) return;
    this.connected = true;
    countConnected(this.stats, this.host, this.startHr);
    cb(null, this.socket);
  }
}

// Socket and timer handlers are shared by every connection (socket-slot.ts says why): a socket
// listener gets the socket as `this` and finds its UpstreamConnection in the socket's slot.

function onTcpError(this: net.Socket, err: NodeJS.ErrnoException): void {
  const conn = slotOf(this).connection!;
  // After connect, errors are the owner's to handle (relay / HTTP pool); 'close' does the accounting.
  if (conn.cb === null) return;
  if (conn.tcpUp) {
    tlsFailed(conn, err);
    return;
  }
  const code = connectErrorCode(err);
  const reason = code === ProxyErrorCode.UPSTREAM_TLS ? 'TLS_error:' + (err.code ?? err.message) : (err.code ?? err.message);
  if (code === ProxyErrorCode.UPSTREAM_TLS) countTlsFailure(conn.stats, err);
  conn.fail(new ProxyError(code === ProxyErrorCode.DNS_FAILED ? ProxyErrorCode.UPSTREAM_CONNECT : code, `connect to ${conn.host.key} failed: ${err.message}`, { cause: err, transportReason: reason }));
}

function onTcpClose(this: net.Socket): void {
  const conn = slotOf(this).connection!;
  // The TCP handle under TLS is still open while 'close' is emitted (its close callback emits it).
  const bytes: ByteCounters = conn.wire ?? this;
  countClosed(conn.stats, conn.host, {
    local: conn.closedLocally || (this.destroyed && !this.readableEnded),
    rxBytes: bytes.bytesRead,
    txBytes: bytes.bytesWritten,
    connectedFrom: conn.connected ? conn.startHr : null,
  });
  if (conn.cb !== null) conn.fail(new ProxyError(ProxyErrorCode.UPSTREAM_CONNECT, `connection to ${conn.host.key} closed during connect`, { transportReason: 'connection_termination' }));
}

function onTcpConnect(this: net.Socket): void {
  const c = slotOf(this).connection!;
  if (c.keepalive !== null) setKeepAliveProbes(this, c.keepalive.intervalMs, c.keepalive.probes);
  c.ready();
}

/** TLS: TCP is up, the handshake starts (tls.connect's own 'connect' listener sends the ClientHello). */
function onTlsTcpConnect(this: net.Socket): void {
  const c = slotOf(this).connection!;
  if (c.keepalive !== null) setKeepAliveProbes(this, c.keepalive.intervalMs, c.keepalive.probes);
  c.tcpUp = true;
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
    clock.schedule(conn, PEER_VERDICT_MAX_MS);
    return;
  }
  conn.ready();
}

function onVerdict(conn: UpstreamConnection): void {
  conn.ready();
}

/** TLS 1.3 tickets arrive after the handshake; keep the latest per SNI. */
function onSession(this: net.Socket, session: Buffer): void {
  const conn = slotOf(this).connection!;
  const t = conn.tls!;
  if (t.sessions.size > 1000) t.sessions.clear();
  t.sessions.set(conn.sessionKey, resumableSession(session));
  if (conn.awaitingVerdict) {
    // A ticket is the server's "accepted": it is sent only after our certificate and Finished checked out.
    // Hand over on the next turn: this event fires inside OpenSSL's read of the ticket, and bytes
    // written from here are never flushed (seen with Node 20).
    conn.awaitingVerdict = false;
    setImmediate(onVerdict, conn);
  }
}

/** An error after TCP connected and before the connection was handed over: the handshake failed. */
function tlsFailed(conn: UpstreamConnection, err: NodeJS.ErrnoException): void {
  countTlsFailure(conn.stats, err);
  conn.fail(new ProxyError(ProxyErrorCode.UPSTREAM_TLS, `TLS handshake with ${conn.host.key} failed: ${err.message}`, { cause: err, transportReason: 'TLS_error:' + (err.code ?? err.message) }));
}

export interface ConnectOptions {
  readonly connectTimeoutMs: number;
  readonly tls: TlsOrigination | null;
  /** SNI to send when originating TLS; null = none */
  readonly sni: string | null;
  /** connectionPool.tcp.tcpKeepalive: idle time by Node, interval and probes by the addon once connected */
  readonly keepalive: { readonly timeMs: number; readonly intervalMs: number; readonly probes: number } | null;
  /** Bind the connection's source to this address first (Envoy upstream_bind_config); null = the kernel's choice. */
  readonly localAddress?: string | null;
}

/**
 * Connect to `host`; `cb` gets a connected (and, with TLS, handshaken) socket or a classified error.
 * `onread` (see proxy/l4/upstream-reader.ts, proxy/l7/response-reader.ts) makes the socket read into
 * the caller's buffer instead of emitting 'data'; with TLS it gets the decrypted bytes.
 */

export function connectUpstream(stats: ClusterStats, host: UpstreamHost, opts: ConnectOptions, cb: ConnectCallback, onread: net.OnReadOpts | null = null): void {
  countOpened(stats, host);
  const t = opts.tls;
  if (t !== null) {
    connectTls(stats, host, opts, t, cb, onread);
    return;
  }
  const tcp = opts.localAddress != null
    ? net.connect({ host: host.address, port: host.port, noDelay: true, allowHalfOpen: true, localAddress: opts.localAddress, ...(onread === null ? {} : { onread }) })
    : onread === null
      ? net.connect({ host: host.address, port: host.port, noDelay: true, allowHalfOpen: true })
      : net.connect({ host: host.address, port: host.port, noDelay: true, allowHalfOpen: true, onread });
  const conn = watch(stats, host, opts, tcp, cb);
  tcp.on('connect', onTcpConnect);
  if (opts.connectTimeoutMs > 0) clock.schedule(conn, opts.connectTimeoutMs);
}

/** The listeners and settings every upstream connection gets, TCP or TLS. */
function watch(stats: ClusterStats, host: UpstreamHost, opts: ConnectOptions, socket: net.Socket, cb: ConnectCallback): UpstreamConnection {
  if (opts.keepalive !== null) socket.setKeepAlive(true, opts.keepalive.timeMs);
  const conn = new UpstreamConnection(stats, host, socket, cb);
  conn.keepalive = opts.keepalive;
  slotOf(socket).connection = conn;
  // 'on', not 'once': these fire at most once, and once() allocates a wrapper per listener.
  socket.on('close', onTcpClose);
  socket.on('error', onTcpError);
  return conn;
}

/** tls.connect's options as Node takes them (@types/node 20 lacks these two). */
type TlsConnectOptions = tls.ConnectionOptions & { allowHalfOpen: boolean; onread?: net.OnReadOpts };

/** What Node's TLSSocket has and @types/node does not declare: tls.connect sets sessions with it. */
type TlsSocketInternals = tls.TLSSocket & { setSession?(session: Buffer): void };

const canSetSession = typeof (tls.TLSSocket.prototype as TlsSocketInternals).setSession === 'function';

function connectTls(stats: ClusterStats, host: UpstreamHost, opts: ConnectOptions, t: TlsOrigination, cb: ConnectCallback, onread: net.OnReadOpts | null): void {
  const sessionKey = opts.sni ?? host.key;
  const session = t.sessions.get(sessionKey);
  const options: TlsConnectOptions = {
    host: host.address,
    port: host.port,
    secureContext: t.secureContext,
    rejectUnauthorized: t.rejectUnauthorized,
    ALPNProtocols: t.alpn.length > 0 ? [...t.alpn] : undefined,
    allowHalfOpen: true,
  };
  // Not tls.connect's `session` option where avoidable: with it the session is decoded twice
  // (TLSSocket's _init and connect() each set it), ~0.25 ms of CPU each on Node 20. Set once below,
  // before the ClientHello, which leaves when TCP connects.
  if (!canSetSession) options.session = session;
  if (onread !== null) options.onread = onread;
  if (opts.sni !== null && !net.isIP(opts.sni)) options.servername = opts.sni;
  if (t.checkServerIdentity !== undefined) options.checkServerIdentity = t.checkServerIdentity;
  const secure = tls.connect(options);
  secure.setNoDelay(true);
  const conn = watch(stats, host, opts, secure, cb);
  conn.tls = t;
  conn.wire = wireOf(secure);
  conn.sessionKey = sessionKey;
  if (canSetSession && session !== undefined) (secure as TlsSocketInternals).setSession!(session);
  secure.on('connect', onTlsTcpConnect);
  secure.on('secureConnect', onSecureConnect);
  secure.on('session', onSession);
  if (opts.connectTimeoutMs > 0) clock.schedule(conn, opts.connectTimeoutMs);
}
