// Envoy's tcp_proxy filter: pick the TCP route (first match on destination/source/SNI), pick a
// cluster by weight and a host by the cluster's load balancer, connect (originating TLS if the
// DestinationRule says so), then relay bytes both ways until both sides are done. One access-log
// line per connection, in Istio's TCP shape (`"- - -" 0 <flags> ...`).

import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ProxyContext } from '../context';
import { slotOf } from '../transport/socket-slot';
import { formatSocketAddress } from '../transport/socket-addresses';
import { FLAG, ProxyErrorCode, rescueFor, type Flag, type ProxyError } from '../errors';
import { recordFor, type AccessLogRecord } from '../observe/access-log-record';
import type { TcpStats } from '../observe/stats';
import type { OriginalDestination, UpstreamCluster } from '../upstream/cluster';
import type { PickContext } from '../upstream/lb';
import type { UpstreamHost } from '../upstream/host';
import { relay, type RelayHooks, type RelayResult } from './relay';
import { UpstreamReader } from './upstream-reader';
import { clock, type WheelTimer } from '../timer-wheel';

declare module '../transport/socket-slot' {
  interface SocketSlot {
    /** the TCP proxy session while its upstream connects */
    session: TcpSession | null;
  }
}

/**
 * What the listener learnt about a downstream connection. The address fields may be getters that
 * ask the socket on first use (listener/socket-addresses.ts): read them only when needed.
 */
export interface L4Info {
  readonly originalDst: OriginalDestination | null;
  /** destination IP used for route matching (original dst, or the local address on gateways) */
  readonly dstIp: string;
  readonly localAddress: string;
  readonly remoteIp: string;
  readonly remoteAddress: string;
  /** set by the dispatcher once the ClientHello (or the TLS handshake) has told it */
  sni: string | null;
  /** DOWNSTREAM_PEER_URI_SAN on terminated mTLS (TLS ports with tcp: routes) */
  peerUriSan: string | null;
}

/**
 * What the listener decided for a TCP connection (listener/tcp-plan.ts): this module executes it and
 * picks only the host (the cluster's load balancer), never the route or the cluster again.
 */
export interface TcpPlan {
  readonly statPrefix: string;
  /** null: the catch-all, or no route matched */
  readonly routeName: string | null;
  /** null: no TCP route matched (NR) */
  readonly clusterName: string | null;
  /** undefined: no such cluster (NC), or no route */
  readonly cluster: UpstreamCluster | undefined;
  /** An AuthorizationPolicy refused the connection (Envoy's network RBAC filter): closed, logged with this. */
  readonly denied?: { readonly flag: Flag; readonly details: string; readonly reason: string };
  /** Report mode: what an AuthorizationPolicy would have denied, let through and logged `would_deny` with this reason. */
  readonly wouldDeny?: string;
}

/** Where a planned connection goes: its stats, its record and the picked host. */
export interface Routed {
  readonly stats: TcpStats;
  readonly record: AccessLogRecord | null;
  readonly cluster: UpstreamCluster;
  readonly host: UpstreamHost;
}

/**
 * Count a planned connection and pick its host. Null when it can go nowhere (no route: NR, no
 * cluster: NC, no healthy host: UH), already counted and logged: the caller closes the downstream.
 */
export function routePlan(ctx: ProxyContext, plan: TcpPlan, info: L4Info): Routed | null {
  const stats = ctx.tcpStatsFor(plan.statPrefix);
  stats.downstream_cx_total.inc();
  if (plan.denied !== undefined) {
    const record = recordIfLogged(ctx, info);
    if (record !== null) {
      record.upstreamCluster = plan.clusterName;
      record.routeName = plan.routeName;
      record.policyDecision = 'deny';
      record.policyReason = plan.denied.reason;
    }
    logFailure(ctx, record, plan.denied.flag, plan.denied.details, null);
    return null;
  }
  if (plan.clusterName === null) {
    stats.downstream_cx_no_route.inc();
    const r = rescueFor(ProxyErrorCode.NO_FILTER_CHAIN);
    logFailure(ctx, recordIfLogged(ctx, info), r.flags, r.details, null);
    return null;
  }
  const record = routedRecord(ctx, info, plan.clusterName, plan.routeName);
  if (record !== null && plan.wouldDeny !== undefined) {
    record.policyDecision = 'would_deny';
    record.policyReason = plan.wouldDeny;
  }
  const cluster = plan.cluster;
  if (cluster === undefined) {
    const r = rescueFor(ProxyErrorCode.NO_CLUSTER);
    logFailure(ctx, record, r.flags, r.details, null);
    return null;
  }
  const host = pickHost(cluster, info, record);
  if (host === null) {
    logFailure(ctx, record, rescueFor(ProxyErrorCode.NO_HEALTHY_UPSTREAM).flags, null, null);
    return null;
  }
  return { stats, record, cluster, host };
}

/** Execute a plan on net.Sockets. */
export function proxyTcp(ctx: ProxyContext, downstream: net.Socket, head: Buffer | null, plan: TcpPlan, info: L4Info): void {
  const routed = routePlan(ctx, plan, info);
  if (routed === null) {
    downstream.destroy();
    return;
  }
  const { cluster, host } = routed;
  // Hold downstream bytes while connecting; the relay resumes it.
  downstream.pause();
  // Plain TCP upstreams read into a per-connection buffer (no allocation per read); a TLS-originating
  // cluster's socket is read by the TLS layer.
  const reader = cluster.originatesTls ? null : new UpstreamReader();
  const session = new TcpSession(ctx, downstream, head, routed.record, routed.stats, host, cluster.config.idleTimeoutMs, reader);
  slotOf(downstream).session = session;
  downstream.on('close', onEarlyClose);
  // Accept paths attach one for the socket's life; a TLS-terminated socket may not have one yet.
  if (downstream.listenerCount('error') === 0) downstream.on('error', noop);
  cluster.connect(host, info.sni, session.onConnected, reader === null ? null : reader.onread);
}

/**
 * The connection's access-log record, or null when no sink reads records (`--access-log off`, no
 * audit log): then neither the record nor the addresses it would copy are made.
 */
function recordIfLogged(ctx: ProxyContext, info: L4Info): AccessLogRecord | null {
  return ctx.accessLog.enabled ? recordFor(info) : null;
}

/** The record of a connection routed to `clusterName` (by `routeName`, none for a catch-all). */
function routedRecord(ctx: ProxyContext, info: L4Info, clusterName: string, routeName: string | null): AccessLogRecord | null {
  const record = recordIfLogged(ctx, info);
  if (record !== null) {
    record.upstreamCluster = clusterName;
    record.routeName = routeName;
  }
  return record;
}

/** The cluster's load balancer picks a host (recorded), or none: upstream_cx_none_healthy, and the caller fails with UH. */
function pickHost(cluster: UpstreamCluster, info: L4Info, record: AccessLogRecord | null): UpstreamHost | null {
  const host = cluster.pick(new TcpPick(info), info.originalDst);
  if (host === null) cluster.stats.upstream_cx_none_healthy.inc();
  else if (record !== null) record.upstreamHost = host.key;
  return host;
}

/** The access-log line of a connection that was never relayed. */
export function logFailure(ctx: ProxyContext, record: AccessLogRecord | null, flag: Flag, details: string | null, transportReason: string | null): void {
  if (record === null) return;
  record.addFlag(flag);
  record.connectionTerminationDetails = details;
  record.upstreamTransportFailureReason = transportReason;
  record.durationMs = Math.round(performance.now() - record.startHr);
  ctx.accessLog.log(record);
}

/** The load balancer's view of a TCP connection: the source IP is read only by a source-IP hash. */
class TcpPick implements PickContext {
  readonly hashValue = null;
  constructor(private readonly info: L4Info) {}
  get sourceIp(): string {
    return this.info.remoteIp;
  }
}

/** The downstream closed while its upstream connection was still being opened. */
function onEarlyClose(this: net.Socket): void {
  slotOf(this).session!.downstreamGone = true;
}

/** The idle check period for a timeout: a quarter of it. */
function idleCheckPeriod(idleTimeoutMs: number): number {
  return Math.ceil(idleTimeoutMs / 4);
}

let idleWatched = 0;

/** Relays whose idle timeout is being watched (tests). */
export function watchedCount(): number {
  return idleWatched;
}

/** What a session needs of a running relay, whichever kind of sockets it joins. */
export interface L4Relay {
  readonly bytesFromDownstream: number;
  readonly bytesFromUpstream: number;
  abort(): void;
}

/**
 * One proxied connection from connect to the access-log line, whatever carries it (net.Sockets
 * here, bare handles in handle-proxy.ts); it is also the relay's hooks. The host counts it as an
 * active request from the pick until the end, so LEAST_REQUEST sees TCP load (and in-flight
 * connects) too.
 */
export abstract class L4Session implements RelayHooks, WheelTimer {
  wheelDue = -1;
  protected relay: L4Relay | null = null;
  private lastActivity = 0;
  private lastActivityAt = 0;

  constructor(
    protected readonly ctx: ProxyContext,
    protected readonly record: AccessLogRecord | null,
    private readonly stats: TcpStats,
    protected readonly host: UpstreamHost,
    private readonly idleTimeoutMs: number,
  ) {
    host.counters.rq_active++;
  }

  /** Close the downstream connection without relaying (a failed or abandoned connect). */
  protected abstract closeDownstream(): void;

  /** The upstream connect failed: Envoy's flags, the log line, the downstream closed. */
  protected connectFailed(err: ProxyError | null): void {
    this.host.counters.rq_active--;
    const code = err?.code ?? ProxyErrorCode.UPSTREAM_CONNECT;
    const overflow = code === ProxyErrorCode.UPSTREAM_OVERFLOW;
    // tcp_proxy's max_connect_attempts is 1 under Istio: a failed connect is also the last attempt (URX, after the failure's own flag).
    if (!overflow) this.record?.addFlag(rescueFor(code).flags);
    this.closeDownstream();
    logFailure(this.ctx, this.record, overflow ? rescueFor(code).flags : FLAG.UPSTREAM_RETRY_LIMIT_EXCEEDED, null, err?.transportReason ?? null);
  }

  /** The downstream left while the upstream connected (which the caller closes again): DC. */
  protected downstreamLeft(): void {
    this.host.counters.rq_active--;
    const record = this.record;
    if (record === null) return;
    record.addFlag(FLAG.DOWNSTREAM_CONNECTION_TERMINATION);
    record.durationMs = Math.round(performance.now() - record.startHr);
    this.ctx.accessLog.log(record);
  }

  /** The relay is running: count the request and watch it for the idle timeout. */
  protected relaying(relay: L4Relay): void {
    this.host.counters.rq_total++;
    this.relay = relay;
    if (this.idleTimeoutMs > 0) {
      this.lastActivityAt = clock.now();
      idleWatched++;
      clock.schedule(this, idleCheckPeriod(this.idleTimeoutMs));
    }
  }

  /**
   * tcp_proxy idle_timeout: no byte either way for idleTimeoutMs closes both sides. The clock
   * (timer-wheel.ts) asks every quarter of the timeout, so a silent relay closes between T and
   * 1.25 T (plus a tick); the relay's byte counts say whether anything moved (no timer work per chunk).
   */
  onTimer(): void {
    if (this.idleCheck(clock.now())) idleWatched--;
    else clock.schedule(this, idleCheckPeriod(this.idleTimeoutMs));
  }

  /** True when the relay is gone or timed out (it is then no longer watched). */
  private idleCheck(now: number): boolean {
    const r = this.relay;
    if (r === null) return true;
    const activity = r.bytesFromDownstream + r.bytesFromUpstream;
    if (activity !== this.lastActivity) {
      this.lastActivity = activity;
      this.lastActivityAt = now;
      return false;
    }
    if (now - this.lastActivityAt < this.idleTimeoutMs) return false;
    this.stats.idle_timeout.inc();
    if (this.record !== null) this.record.connectionTerminationDetails = 'tcp_proxy_idle_timeout';
    r.abort();
    return true;
  }

  /** RelayHooks: both sockets closed. */
  onClose(r: RelayResult): void {
    // Still watched unless it never was or it timed out.
    if (this.wheelDue >= 0) {
      clock.cancel(this);
      idleWatched--;
    }
    this.relay = null;
    this.host.counters.rq_active--;
    finishRelay(this.ctx, this.record, this.stats, this.host, r);
  }
}

/** A proxied connection between net.Sockets. One closure per connection (the connect callback), nothing per chunk. */
export class TcpSession extends L4Session {
  readonly onConnected: (err: ProxyError | null, upstream: net.Socket | null) => void;
  downstreamGone = false;

  constructor(
    ctx: ProxyContext,
    private readonly downstream: net.Socket,
    private readonly head: Buffer | null,
    record: AccessLogRecord | null,
    stats: TcpStats,
    host: UpstreamHost,
    idleTimeoutMs: number,
    private readonly reader: UpstreamReader | null,
  ) {
    super(ctx, record, stats, host, idleTimeoutMs);
    this.onConnected = this.connected.bind(this);
  }

  protected closeDownstream(): void {
    this.downstream.destroy();
  }

  private connected(err: ProxyError | null, upstream: net.Socket | null): void {
    const { downstream, record } = this;
    downstream.removeListener('close', onEarlyClose);
    if (err !== null || upstream === null) {
      this.connectFailed(err);
      return;
    }
    if (this.downstreamGone) {
      upstream.destroy();
      this.downstreamLeft();
      return;
    }
    if (record !== null) record.upstreamLocalAddress = upstream.localAddress === undefined ? null : formatSocketAddress(upstream.localAddress, upstream.localPort);
    this.relaying(relay(downstream, upstream, this.head, this, this.reader));
  }
}

function finishRelay(ctx: ProxyContext, record: AccessLogRecord | null, stats: TcpStats, host: UpstreamHost, r: RelayResult): void {
  stats.downstream_cx_rx_bytes_total.add(r.bytesFromDownstream);
  stats.downstream_cx_tx_bytes_total.add(r.bytesFromUpstream);
  if (r.error !== null) host.counters.rq_error++;
  else host.counters.rq_success++;
  if (record === null) return;
  record.bytesReceived = r.bytesFromDownstream;
  record.bytesSent = r.bytesFromUpstream;
  // Envoy: UC when the upstream reset the connection, DC when the downstream did.
  if (r.error !== null) record.addFlag(r.downstreamError ? FLAG.DOWNSTREAM_CONNECTION_TERMINATION : FLAG.UPSTREAM_CONNECTION_TERMINATION);
  record.durationMs = Math.round(performance.now() - record.startHr);
  ctx.accessLog.log(record);
}


function noop(): void {}
