// What happens to an accepted connection once we know which Listener it belongs to: inspect the first
// bytes only when a chain needs SNI/ALPN (server-first protocols on declared TCP ports are never
// sniffed), select the filter chain, terminate TLS when the chain says so, then hand the socket to the
// HTTP connection manager or the TCP proxy. Shared by the gateway ports and the sidecar capture port.

import type net from 'node:net';
import type tls from 'node:tls';
import type { FilterChain, Listener } from '../../config/compile/snapshot';
import { selectChain, type ChainInput } from '../../config/compile/lookup';
import type { ProxyContext } from '../context';
import { recordFor } from '../observe/access-log-record';
import type { ListenerStats } from '../observe/stats';
import { DownstreamInfo, handOverHttp } from '../l7/http-connection';
import { proxyTcp, type L4Info } from '../l4/tcp-proxy';
import { terminateTls } from '../tls/terminate';
import { xfccElement } from '../l7/xfcc';
import { planTcp } from './tcp-plan';
import { inspect, type Inspection, type InspectOptions } from './inspect';
import { FLAG, ProxyErrorCode, rescueFor, type Flag, type ProxyError } from '../errors';

/** Bound on first-bytes inspection (hellos span segments; Istio waits indefinitely by default). */
const INSPECT_TIMEOUT_MS = 10_000;
const INSPECT_MAX_BYTES = 16 * 1024 + 5 * 4;
const NO_CHAIN = rescueFor(ProxyErrorCode.NO_FILTER_CHAIN);

export interface AcceptedConnection {
  readonly socket: net.Socket;
  readonly listener: Listener;
  readonly listenerStats: ListenerStats;
  /** the addresses may be read lazily (socket-addresses.ts); sni/peerUriSan are set here once known */
  readonly l4: L4Info;
  /** The sidecar's inbound listener (inbound.ts): its dropped connections are logged `inbound`, and it hears of them. */
  readonly inbound?: { onNoChain(conn: AcceptedConnection, isTls: boolean): void };
}

/** How the first bytes of a connection on `listener` are inspected; null: they are not. */
export function inspectOptionsFor(listener: Listener): InspectOptions | null {
  const needsHttpSniff = listener.protocol === 'auto';
  if (!listener.needsTlsInspection && !needsHttpSniff) return null;
  return { wantTls: listener.needsTlsInspection || needsHttpSniff, wantHttp: needsHttpSniff, timeoutMs: INSPECT_TIMEOUT_MS, maxBytes: INSPECT_MAX_BYTES };
}

/** `opts`: the listener's inspectOptionsFor, when the caller has it already. */
export function dispatchConnection(ctx: ProxyContext, conn: AcceptedConnection, opts = inspectOptionsFor(conn.listener)): void {
  if (opts === null) {
    runChain(ctx, conn, chainFor(conn.listener, conn.l4, null), null, null);
    return;
  }
  inspect(conn.socket, opts, (err, r) => dispatchInspected(ctx, conn, err, r));
}

/**
 * Go on from an inspection: this module's own, or a bare handle's (inspect-handle.ts) whose
 * connection then became `conn.socket` with nothing read from it yet.
 */
export function dispatchInspected(ctx: ProxyContext, conn: AcceptedConnection, err: ProxyError | null, r: Inspection | null): void {
  if (err !== null || r === null) {
    conn.listenerStats.no_filter_chain_match.inc();
    conn.inbound?.onNoChain(conn, false);
    logDropped(ctx, conn, null, NO_CHAIN.flags, err === null ? NO_CHAIN.details : err.message);
    conn.socket.destroy();
    return;
  }
  runChain(ctx, conn, chainFor(conn.listener, conn.l4, r), r, r.head);
}

/** Go on with the chain selected for the connection (null: none matched). */
export function runChain(ctx: ProxyContext, conn: AcceptedConnection, chain: FilterChain | null, insp: Inspection | null, head: Buffer | null): void {
  const sni = insp?.sni ?? null;
  if (chain === null) {
    conn.listenerStats.no_filter_chain_match.inc();
    conn.inbound?.onNoChain(conn, insp?.isTls === true);
    logDropped(ctx, conn, sni, NO_CHAIN.flags, NO_CHAIN.details);
    conn.socket.destroy();
    return;
  }
  const socket: net.Socket = conn.socket;
  if (chain.tls !== null) {
    // Put the inspected bytes back so the TLS server reads the ClientHello it needs.
    if (head !== null && head.length > 0) socket.unshift(head);
    let secureContext: tls.SecureContext;
    try {
      secureContext = ctx.serverTls.get(chain.tls);
    } catch (e) {
      ctx.log.error({ err: (e as Error).message, chain: chain.name }, 'cannot load server certificate');
      conn.listenerStats.ssl_connection_error.inc();
      logDropped(ctx, conn, sni, FLAG.NONE, 'cannot load server certificate');
      socket.destroy();
      return;
    }
    terminateTls(socket, chain.tls, secureContext, conn.listenerStats, {
      secure(secure, servername, peerUriSan) {
        const xfcc = chain.filter.kind === 'http' && chain.filter.forwardClientCert !== undefined ? xfccElement(secure) : undefined;
        handToFilter(ctx, conn, chain, secure, sni ?? servername, peerUriSan, null, 'https', xfcc);
      },
      failed(f) {
        logDropped(ctx, conn, sni, FLAG.NONE, 'downstream TLS handshake failed: ' + f.reason);
      },
    }, chain.filter.kind === 'http');
    return;
  }
  handToFilter(ctx, conn, chain, socket, sni, null, head, 'http');
}

function handToFilter(
  ctx: ProxyContext, conn: AcceptedConnection, chain: FilterChain, socket: net.Socket, sni: string | null, peerUriSan: string | null,
  head: Buffer | null, scheme: 'http' | 'https', xfcc?: string | null,
): void {
  const f = chain.filter;
  if (f.kind === 'http') {
    if (head !== null && head.length > 0) socket.unshift(head);
    const info = new DownstreamInfo({
      hcm: f,
      httpStats: ctx.httpStatsFor(f.statPrefix),
      originalDst: conn.l4.originalDst,
      localAddress: conn.l4.localAddress,
      remoteIp: conn.l4.remoteIp,
      remoteAddress: conn.l4.remoteAddress,
      sni,
      peerUriSan,
      scheme,
      appendXff: ctx.role === 'gateway',
      absoluteForm: false,
      // APPEND_FORWARD: a connection without a verified client certificate forwards no header.
      xfcc: f.forwardClientCert === undefined ? undefined : xfcc ?? null,
    });
    handOverHttp(ctx, socket, info);
    // inspect() leaves the socket explicitly paused; adding a 'data' listener does not resume it.
    socket.resume();
    return;
  }
  conn.l4.sni = sni;
  conn.l4.peerUriSan = peerUriSan;
  proxyTcp(ctx, socket, head, planTcp(ctx, f, conn.l4), conn.l4);
}

/** The filter chain a connection on `listener` takes, given what its first bytes said (null: not inspected). */
export function chainFor(listener: Listener, l4: L4Info, first: Inspection | null): FilterChain | null {
  return selectChain(listener, first === null ? new ChainQuery(l4, false, null, null) : new ChainQuery(l4, first.isTls, first.sni, first.alpn));
}

/** A filter-chain match input whose destination address is read only by a chain that matches on it. */
class ChainQuery implements ChainInput {
  constructor(private readonly l4: L4Info, readonly isTls: boolean, readonly sni: string | null, readonly alpn: readonly string[] | null) {}
  get dstIp(): string {
    return this.l4.dstIp;
  }
}

function logDropped(ctx: ProxyContext, conn: AcceptedConnection, sni: string | null, flags: Flag, details: string): void {
  const r = recordFor({ localAddress: conn.l4.localAddress, remoteAddress: conn.l4.remoteAddress, sni, peerUriSan: null });
  r.addFlag(flags);
  if (conn.inbound !== undefined) r.direction = 'inbound';
  r.connectionTerminationDetails = details;
  ctx.accessLog.log(r);
}
