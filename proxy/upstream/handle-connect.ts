// Opening one plain-TCP upstream connection as a bare handle (proxy/transport/tcp-handle.ts says why), for
// the TCP proxy's fast path. Same contract and the same Envoy accounting as connect.ts's net.Socket
// connector (cx-accounting.ts): a connect timeout per connection, failures classified as ProxyErrors
// with Envoy's transport failure reason, and the close counted when the relay lets the handle go.

import { performance } from 'node:perf_hooks';
import { ProxyError, ProxyErrorCode } from '../errors';
import type { ClusterStats } from '../observe/stats';
import { tcpHandles, uvError, type AddressOut, type ConnectReq, type TcpHandle, type TcpHandles } from '../transport/tcp-handle';
import { setKeepAliveProbes } from '../transport/original-dst';
import { formatSocketAddress } from '../transport/socket-addresses';
import { clock, type WheelTimer } from '../timer-wheel';
import { countClosed, countConnected, countConnectFailure, countOpened } from './cx-accounting';
import type { ConnectOptions } from './connect';
import type { UpstreamHost } from './host';

export type HandleConnectCallback = (err: ProxyError | null, conn: UpstreamHandle | null) => void;

type OwnedConnectReq = ConnectReq & { conn?: UpstreamHandle };

/** One upstream connection on a bare handle, from connect until its relay closed it. */
export class UpstreamHandle implements WheelTimer {
  readonly startHr = performance.now();
  wheelDue = -1;
  private cb: HandleConnectCallback | null;
  private connected = false;
  private closeCounted = false;

  constructor(
    readonly handle: TcpHandle,
    private readonly stats: ClusterStats,
    readonly host: UpstreamHost,
    private readonly keepalive: ConnectOptions['keepalive'],
    cb: HandleConnectCallback,
  ) {
    this.cb = cb;
  }

  armTimeout(ms: number): void {
    if (ms > 0) clock.schedule(this, ms);
  }

  fail(err: ProxyError): void {
    this.clearTimer();
    const cb = this.cb;
    this.cb = null;
    if (cb === null) return;
    countConnectFailure(this.stats, this.host, err);
    // Closing cancels a connect still in flight; its completion then finds cb === null.
    this.handle.close();
    this.closed(true, 0, 0);
    cb(err, null);
  }

  completed(status: number): void {
    if (this.cb === null) return; // timed out meanwhile
    if (status < 0) {
      const e = uvError(status, 'connect');
      this.fail(new ProxyError(ProxyErrorCode.UPSTREAM_CONNECT, `connect to ${this.host.key} failed: ${e.message}`, { cause: e, transportReason: e.code ?? e.message }));
      return;
    }
    this.clearTimer();
    const cb = this.cb;
    this.cb = null;
    this.connected = true;
    countConnected(this.stats, this.host, this.startHr);
    const ka = this.keepalive;
    if (ka !== null) {
      this.handle.setKeepAlive(true, Math.floor(ka.timeMs / 1000));
      setKeepAliveProbes(this.handle, ka.intervalMs, ka.probes);
    }
    cb(null, this);
  }

  /** `ip:port` this side of the connection, for UPSTREAM_LOCAL_ADDRESS. */
  localAddress(): string | null {
    const out: AddressOut = {};
    return this.handle.getsockname(out) === 0 ? formatSocketAddress(out.address, out.port) : null;
  }

  /** The handle is closed (by the relay, or a failed connect): `local` unless the upstream's FIN came first. */
  closed(local: boolean, rxBytes: number, txBytes: number): void {
    if (this.closeCounted) return;
    this.closeCounted = true;
    countClosed(this.stats, this.host, { local, rxBytes, txBytes, connectedFrom: this.connected ? this.startHr : null });
  }

  private clearTimer(): void {
    clock.cancel(this);
  }

  /** The connect timeout (the proxy's one clock, timer-wheel.ts). */
  onTimer(): void {
    this.fail(new ProxyError(ProxyErrorCode.UPSTREAM_CONNECT_TIMEOUT, `connect to ${this.host.key} timed out`, { transportReason: 'connection_timeout' }));
  }
}

function noRead(): undefined {
  return undefined;
}

function onConnect(this: OwnedConnectReq, status: number): void {
  const conn = this.conn!;
  this.conn = undefined;
  conn.completed(status);
}

/**
 * Connect a bare handle to `host` (an IP literal). `cb` gets the connection, already reading (its
 * `onread` is the caller's to set in `cb`), or a classified error, never synchronously. Callers
 * check `tcpHandles()` first.
 */
export function connectHandle(stats: ClusterStats, host: UpstreamHost, opts: ConnectOptions, cb: HandleConnectCallback): void {
  const h: TcpHandles = tcpHandles()!;
  countOpened(stats, host);
  const handle = h.newSocket();
  handle.setNoDelay(true);
  const conn = new UpstreamHandle(handle, stats, host, opts.keepalive, cb);
  const req: OwnedConnectReq = h.newConnectReq();
  req.oncomplete = onConnect;
  req.address = host.address;
  req.port = host.port;
  req.conn = conn;
  const v6 = host.address.includes(':');
  let err = 0;
  if (opts.localAddress != null) err = v6 ? handle.bind6(opts.localAddress, 0, 0) : handle.bind(opts.localAddress, 0);
  if (err === 0) err = v6 ? handle.connect6(req, host.address, host.port) : handle.connect(req, host.address, host.port);
  if (err !== 0) {
    req.conn = undefined;
    process.nextTick(() => conn.completed(err));
    return;
  }
  // Reading from the start: libuv then registers the socket with epoll once for both the connect
  // and the reads (started after the connect, it costs a failed EPOLL_CTL_ADD and a MOD more).
  // libuv delivers no read before the connect completes, and the relay takes over `onread` in the
  // connect callback.
  handle.onread = noRead;
  const readErr = handle.readStart();
  if (readErr !== 0) {
    // libuv refuses only a closing or unreadable handle, which a handle that has just begun to
    // connect is not; should it happen, the connect fails rather than relay from a handle that never reads.
    process.nextTick(() => conn.completed(readErr));
    return;
  }
  conn.armTimeout(opts.connectTimeoutMs);
}
