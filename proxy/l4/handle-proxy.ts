// Envoy's tcp_proxy filter on bare TCP handles (tcp-handle.ts says why): the fast path for a
// connection on a listener that needs no inspection and no TLS, whose TCP route leads to a cluster
// that does not originate TLS. Everything else (a listener that sniffs, terminates TLS or speaks
// HTTP, no route, no such cluster, TLS origination) is declined before anything is counted, and the
// caller hands the connection to the net.Socket path, which handles it exactly as before.
//
// Routing, load balancing, stats, idle timeout and the access-log line are tcp-proxy.ts's own
// (L4Session); only the transport differs: handle-connect.ts opens the upstream, handle-relay.ts
// joins the two.

import type { FilterChain, Listener, TcpProxy } from '../../config/compile/snapshot';
import { findTcpRoute, pickCluster } from '../../config/compile/lookup';
import type { ProxyContext } from '../context';
import type { ProxyError } from '../errors';
import type { AccessLogRecord } from '../observe/access-log-record';
import type { TcpStats } from '../observe/stats';
import { closeTracked, type TrackedDownstream } from '../listener/connection-stats';
import { chainFor, inspectOptionsFor } from '../listener/dispatch';
import type { Inspection } from '../listener/inspect';
import type { HandleInspection } from '../listener/inspect-handle';
import type { UpstreamHandle } from '../upstream/handle-connect';
import type { UpstreamHost } from '../upstream/host';
import { EARLY_READ_LIMIT, relayHandles, type EarlyRead, type HandleRelay } from './handle-relay';
import type { RelayResult } from './relay';
import { tcpHandles, type TcpHandle } from '../transport/tcp-handle';
import { L4Session, logFailure, pickHost, routedRecord, type L4Info } from './tcp-proxy';

/** The filter chain of a connection on `listener` (given what its first bytes said), if plain TCP. */
function plainTcpChain(listener: Listener, info: L4Info, first: Inspection | null): (FilterChain & { filter: TcpProxy }) | null {
  const chain = chainFor(listener, info, first);
  if (chain === null || chain.tls !== null || chain.filter.kind !== 'tcp') return null;
  return chain as FilterChain & { filter: TcpProxy };
}

/**
 * Proxy an accepted handle on the fast path when its listener looks at no bytes. Returns false,
 * having counted and touched nothing, when the connection needs inspection or the net.Socket
 * path; otherwise the connection is this module's.
 */
export function proxyTcpHandle(ctx: ProxyContext, down: TcpHandle, listener: Listener, info: L4Info, tracked: TrackedDownstream): boolean {
  if (inspectOptionsFor(listener) !== null) return false;
  const chain = plainTcpChain(listener, info, null);
  return chain !== null && proxyChosen(ctx, down, chain, info, tracked, null);
}

/**
 * The same after the handle's first bytes were inspected (listener/inspect-handle.ts): they are the
 * relay's first write. False, nothing counted: the chain or cluster needs the net.Socket path.
 */
export function proxyInspectedHandle(ctx: ProxyContext, down: TcpHandle, listener: Listener, info: L4Info, tracked: TrackedDownstream, first: HandleInspection): boolean {
  const chain = plainTcpChain(listener, info, first);
  if (chain === null) return false;
  info.sni = first.sni;
  return proxyChosen(ctx, down, chain, info, tracked, first);
}

function proxyChosen(ctx: ProxyContext, down: TcpHandle, chain: FilterChain & { filter: TcpProxy }, info: L4Info, tracked: TrackedDownstream, first: HandleInspection | null): boolean {
  const route = findTcpRoute(chain.filter.routes, info);
  if (route === null) return false;
  return start(ctx, down, pickCluster(route.clusters, Math.random()), route.name, chain.filter.statPrefix, info, tracked, first);
}

/** Straight to one cluster (the sidecar catch-all), as proxyTcpToCluster; false: take the net.Socket path. */
export function proxyTcpHandleToCluster(ctx: ProxyContext, down: TcpHandle, clusterName: string, info: L4Info, tracked: TrackedDownstream): boolean {
  return start(ctx, down, clusterName, null, clusterName, info, tracked);
}

function start(ctx: ProxyContext, down: TcpHandle, clusterName: string, routeName: string | null, statPrefix: string, info: L4Info, tracked: TrackedDownstream, first: HandleInspection | null = null): boolean {
  const cluster = ctx.clusters.get(clusterName);
  if (cluster === undefined || cluster.originatesTls) return false;
  const stats = ctx.tcpStatsFor(statPrefix);
  stats.downstream_cx_total.inc();
  const record = routedRecord(ctx, info, clusterName, routeName);
  const host = pickHost(cluster, info, record);
  if (host === null) {
    down.close();
    closeTracked(tracked);
    logFailure(ctx, record, 'UH', null, null);
    return true;
  }
  handleSessions++;
  const session = new HandleSession(ctx, down, tracked, record, stats, host, cluster.config.idleTimeoutMs);
  cluster.connectHandle(host, session.onConnected);
  session.readEarly(first);
  return true;
}

let handleSessions = 0;

/** How many connections took this path since start (tests and diagnostics: is the fast path used?). */
export function handleSessionCount(): number {
  return handleSessions;
}

type EarlyHandle = TcpHandle & { sluiceSession?: HandleSession };

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
    private readonly tracked: TrackedDownstream,
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
    (this.down as EarlyHandle).sluiceSession = undefined;
    this.down.close();
    closeTracked(this.tracked);
  }

  /** Start reading the downstream while the upstream connects, after what inspection read (`first`). */
  readEarly(first: HandleInspection | null): void {
    if (first !== null) {
      if (first.head.length > 0) this.earlyChunks = [first.head];
      this.earlyBytes = first.head.length;
      this.earlyEof = first.eof;
      // After a FIN libuv reads no more.
      if (first.eof) return;
    }
    const down = this.down as EarlyHandle;
    down.sluiceSession = this;
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
    (this.down as EarlyHandle).sluiceSession = undefined;
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
    closeTracked(this.tracked);
    super.onClose(r);
  }
}

function onEarlyRead(this: EarlyHandle, arrayBuffer: ArrayBuffer | undefined): undefined {
  this.sluiceSession?.earlyRead(arrayBuffer);
  return undefined;
}
