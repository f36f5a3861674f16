// Where an accepted bare handle goes, on a gateway port or captured by the sidecar alike. The chain
// is selected once (at accept, or after the ClientHello was read on the handle: inspect-handle.ts)
// and a plain-TCP chain's plan (tcp-plan.ts) made once; then the plan says the transport:
// - bare handles (l4/handle-proxy.ts) for every plan but one to a TLS-originating cluster;
// - that one becomes a net.Socket and the same plan runs there (l4/tcp-proxy.ts);
// - any other chain (TLS termination, HTTP, no chain) and protocol sniffing become a net.Socket and
//   go on through dispatch.ts with the chain (or the failed inspection) handed over, not redone.

import type { FilterChain, TcpProxy } from '../../config/compile/snapshot';
import type { ProxyContext } from '../context';
import type { TcpHandle } from '../transport/tcp-handle';
import { proxyTcpHandle } from '../l4/handle-proxy';
import { proxyTcp } from '../l4/tcp-proxy';
import { trackedSocketFor, type TrackedDownstream } from './connection-stats';
import { chainFor, dispatchConnection, dispatchInspected, inspectOptionsFor, runChain, type AcceptedConnection } from './dispatch';
import { inspectHandle, type HandleInspection } from './inspect-handle';
import { handlesCarry, planTcp, planToCluster } from './tcp-plan';

type HandleConnection = Omit<AcceptedConnection, 'socket'>;

/** `conn` without its socket: the handle becomes one only if the connection needs it. */
export function dispatchHandle(ctx: ProxyContext, client: TcpHandle, conn: HandleConnection, tracked: TrackedDownstream): void {
  const opts = inspectOptionsFor(conn.listener);
  if (opts === null) {
    onChain(ctx, client, conn, tracked, chainFor(conn.listener, conn.l4, null), null);
    return;
  }
  // Protocol sniffing (HTTP or not) stays with the socket inspector: its HTTP side needs sockets anyway.
  if (opts.wantHttp) {
    dispatchConnection(ctx, { ...conn, socket: trackedSocketFor(client, tracked) }, opts);
    return;
  }
  inspectHandle(client, opts, (err, first) => {
    if (err !== null || first === null) dispatchInspected(ctx, { ...conn, socket: trackedSocketFor(client, tracked) }, err, first);
    else onChain(ctx, client, conn, tracked, chainFor(conn.listener, conn.l4, first), first);
  });
}

/** A captured connection with no listener of its own: straight to the catch-all cluster. */
export function dispatchHandleToCluster(ctx: ProxyContext, client: TcpHandle, clusterName: string, conn: Pick<HandleConnection, 'l4'>, tracked: TrackedDownstream): void {
  const plan = planToCluster(ctx, clusterName);
  if (handlesCarry(plan)) proxyTcpHandle(ctx, client, plan, conn.l4, tracked, null);
  else proxyTcp(ctx, trackedSocketFor(client, tracked), null, plan, conn.l4);
}

function onChain(ctx: ProxyContext, client: TcpHandle, conn: HandleConnection, tracked: TrackedDownstream, chain: FilterChain | null, first: HandleInspection | null): void {
  if (chain === null || chain.tls !== null || chain.filter.kind !== 'tcp') {
    runChain(ctx, { ...conn, socket: trackedSocketFor(client, tracked) }, chain, first, first?.head ?? null);
    return;
  }
  if (first !== null) conn.l4.sni = first.sni;
  const plan = planTcp(ctx, chain.filter as TcpProxy, conn.l4);
  if (handlesCarry(plan)) proxyTcpHandle(ctx, client, plan, conn.l4, tracked, first);
  else proxyTcp(ctx, trackedSocketFor(client, tracked), first?.head ?? null, plan, conn.l4);
}
