// The one decision of a TCP connection: route -> cluster (the weighted pick) -> transport. Made once,
// here, when the chain is known (at accept, after the first-bytes inspection, or after the TLS
// handshake of a terminating chain); l4/ executes the plan and never routes or picks a cluster again,
// whichever transport carries the bytes. Before this, a TLS-originating cluster picked on the
// bare-handle path was declined and the socket path routed the connection again with a fresh random
// pick, so a 50/50 split between a plain and a TLS-originating cluster came out near 75/25.

import type { TcpProxy } from '../../config/compile/snapshot';
import { findTcpRoute, pickCluster } from '../../config/compile/lookup';
import type { ProxyContext } from '../context';
import type { L4Info, TcpPlan } from '../l4/tcp-proxy';

/** Route by the filter's TCP routes (first match on destination/source/SNI), then pick a cluster by weight. */
export function planTcp(ctx: ProxyContext, filter: TcpProxy, info: L4Info): TcpPlan {
  const route = findTcpRoute(filter.routes, info);
  if (route === null) return { statPrefix: filter.statPrefix, routeName: null, clusterName: null, cluster: undefined };
  const clusterName = pickCluster(route.clusters, Math.random());
  return { statPrefix: filter.statPrefix, routeName: route.name, clusterName, cluster: ctx.clusters.get(clusterName) };
}

/** Straight to one cluster, no route (the sidecar catch-all: PassthroughCluster / BlackHoleCluster). */
export function planToCluster(ctx: ProxyContext, clusterName: string): TcpPlan {
  return { statPrefix: clusterName, routeName: null, clusterName, cluster: ctx.clusters.get(clusterName) };
}

/**
 * Whether bare handles can carry the plan: all but a TLS-originating cluster (whose TLS needs a
 * net.Socket). A plan that fails (no route, no cluster) fails the same on either transport.
 */
export function handlesCarry(plan: TcpPlan): boolean {
  return plan.cluster === undefined || !plan.cluster.originatesTls;
}
