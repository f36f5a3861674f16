// Envoy's tcp_proxy filter on bare TCP handles (proxy/transport/tcp-handle.ts says why): a TCP
// connection whose plan (listener/tcp-plan.ts) bare handles can carry, that is all but one to a
// TLS-originating cluster. The listener decided route and cluster; this module, like tcp-proxy.ts,
// only picks the host and runs the connection.
//
// Stats, idle timeout and the access-log line are tcp-proxy.ts's own (routePlan, L4Session); only
// the transport differs: handle-connect.ts opens the upstream, handle-relay.ts joins the two.

import type { ProxyContext } from '../context';
import type { ProxyError } from '../errors';
import type { AccessLogRecord } from '../observe/access-log-record';
import type { TcpStats } from '../observe/stats';
import type { UpstreamHandle } from '../upstream/handle-connect';
import type { UpstreamHost } from '../upstream/host';
import { EARLY_READ_LIMIT, relayHandles, type EarlyRead, type HandleRelay } from './handle-relay';
import type { RelayResult } from './relay';
import { tcpHandles, type TcpHandle } from '../transport/tcp-handle';
import { L4Session, routePlan, type L4Info, type TcpPlan } from './tcp-proxy';
import { slotOf } from '../transport/socket-slot';

declare module '../transport/socket-slot' {
  interface SocketSlot {
    /** the session reading this handle while its upstream connects */
    earlySession: HandleSession | null;
  }
}

/** The listener's accounting of the connection (listener/connection-stats.ts), closed when it ends. */
export interface TrackedConnection {
  close(): void;
}

/** What inspecting the handle read before the plan was made: the relay's first write. */
export interface EarlyBytes {
  readonly head: Buffer;
  /** the downstream's FIN came with the bytes (libuv stopped reading it) */
  readonly eof: boolean;
}

/** Execute a plan on bare handles (the caller checked handlesCarry); `first`: what inspection read, if any. */
export function proxyTcpHandle(ctx: ProxyContext, down: TcpHandle, plan: TcpPlan, info: L4Info, tracked: TrackedConnection, first: EarlyBytes | null): void {
  const routed = routePlan(ctx, plan, info);
  if (routed === null) {
    down.close();
    tracked.close();
    return;
  }
  handleSessions++;
  const session = new HandleSession(ctx, down, tracked, routed.record, routed.stats, routed.host, routed.cluster.config.idleTimeoutMs);
  routed.cluster.connectHandle(routed.host, session.onConnected);
  session.readEarly(first);
}

let handleSessions = 0;

/** How many connections took this path since start (tests and diagnostics: is the fast path used?). */
export function handleSessionCount(): number {
  return handleSessions;
}

/** The early read of a client that has sent nothing yet (most connections of server-first protocols). */
const NOTHING_READ_YET: EarlyRead = Object.freeze({ chunks: Object.freeze([]), bytes: 0, eof: false, reading: true });

/**
 * A proxied connection between bare handles. The downstream is read while the upstream connects,
 * as Envoy reads it: what a client sends at once (most clients speak first) is then written the
 * moment the connect completes instead of a loop turn later, when libuv would only start to poll
 * the downstream. Reading stops at EARLY_READ_LIMIT bytes; an EOF is kept for the relay (the
 * client may half-close and still expect the answer); a reset closes the downstream at once and
 * the connection ends as DC when the connect completes.
 */
class HandleSession extends L4Session {
  readonly onConnected: (err: ProxyError | null, conn: UpstreamHandle | null) => void;
  private upstream: UpstreamHandle | null = null;
  /** read from the downstream before the upstream connected (none kept once it has) */
  private earlyChunks: Buffer[] | null = null;
  private earlyBytes = 0;
  private earlyEof = false;
  private earlyReading = false;
  private downstreamGone = false;

  constructor(
    ctx: ProxyContext,
    private readonly down: TcpHandle,
    private readonly tracked: TrackedConnection,
    record: AccessLogRecord | null,
    stats: TcpStats,
    host: UpstreamHost,
    idleTimeoutMs: number,
  ) {
    super(ctx, record, stats, host, idleTimeoutMs);
    this.onConnected = this.connected.bind(this);
  }

  protected closeDownstream(): void {
    if (this.downstreamGone) return;
    this.downstreamGone = true;
    slotOf(this.down).earlySession = null;
    this.down.close();
    this.tracked.close();
  }

  /** Start reading the downstream while the upstream connects, after what inspection read (`first`). */
  readEarly(first: EarlyBytes | null): void {
    if (first !== null) {
      if (first.head.length > 0) this.earlyChunks = [first.head];
      this.earlyBytes = first.head.length;
      this.earlyEof = first.eof;
      // After a FIN libuv reads no more.
      if (first.eof) return;
    }
    const down = this.down;
    slotOf(down).earlySession = this;
    down.onread = onEarlyRead;
    // A failure shows again when the relay starts reading.
    this.earlyReading = down.readStart() === 0;
  }

  earlyRead(arrayBuffer: ArrayBuffer | undefined): void {
    const h = tcpHandles()!;
    const n = h.readResult();
    if (n > 0) {
      (this.earlyChunks ??= []).push(Buffer.from(arrayBuffer!, h.readOffset(), n));
      this.earlyBytes += n;
      if (this.earlyBytes >= EARLY_READ_LIMIT) {
        this.down.readStop();
        this.earlyReading = false;
      }
    } else if (n === h.UV_EOF) {
      this.earlyEof = true;
      this.earlyReading = false;
    } else if (n < 0) {
      this.earlyChunks = null;
      this.closeDownstream();
    }
  }

  private connected(err: ProxyError | null, conn: UpstreamHandle | null): void {
    slotOf(this.down).earlySession = null;
    if (err !== null || conn === null) {
      this.connectFailed(err);
      return;
    }
    if (this.downstreamGone) {
      conn.handle.close();
      conn.closed(true, 0, 0);
      this.downstreamLeft();
      return;
    }
    this.upstream = conn;
    if (this.record !== null) this.record.upstreamLocalAddress = conn.localAddress();
    const early: EarlyRead = this.earlyChunks === null && !this.earlyEof && this.earlyReading
      ? NOTHING_READ_YET
      : { chunks: this.earlyChunks ?? [], bytes: this.earlyBytes, eof: this.earlyEof, reading: this.earlyReading };
    this.earlyChunks = null;
    this.relaying(relayHandles(this.down, conn.handle, this, early));
  }

  override onClose(r: RelayResult): void {
    const relay = this.relay as HandleRelay;
    // What the upstream sent is what the relay read from it; what it was sent, what was read downstream.
    this.upstream!.closed(!relay.upstreamEnded, r.bytesFromUpstream, r.bytesFromDownstream);
    this.tracked.close();
    super.onClose(r);
  }
}

function onEarlyRead(this: TcpHandle, arrayBuffer: ArrayBuffer | undefined): undefined {
  slotOf(this).earlySession?.earlyRead(arrayBuffer);
  return undefined;
}
