// The one decision of a TCP connection: route -> cluster (the weighted pick) -> transport. Made once,
// here, when the chain is known (at accept, after the first-bytes inspection, or after the TLS
// handshake of a terminating chain); l4/ executes the plan and never routes or picks a cluster again,
// whichever transport carries the bytes. Before this, a TLS-originating cluster picked on the
// bare-handle path was declined and the socket path routed the connection again with a fresh random
// pick, so a 50/50 split between a plain and a TLS-originating cluster came out near 75/25.

import type { TcpProxy } from '../../config/compile/snapshot';
import { findTcpRoute, pickCluster } from '../../config/compile/lookup';
import { evaluateAuthz, principalOf } from '../../config/compile/authorization';
import type { ProxyContext } from '../context';
import { ProxyErrorCode, rescueFor } from '../errors';
import { sanitizeStatSegment } from '../observe/stats';
import type { L4Info, TcpPlan } from '../l4/tcp-proxy';

/** Route by the filter's TCP routes (first match on destination/source/SNI), then pick a cluster by weight. */
export function planTcp(ctx: ProxyContext, filter: TcpProxy, info: L4Info): TcpPlan {
  const route = findTcpRoute(filter.routes, info);
  if (route === null) return { statPrefix: filter.statPrefix, routeName: null, clusterName: null, cluster: undefined };
  const clusterName = pickCluster(route.clusters, Math.random());
  const denied = rbacDenial(ctx, filter.statPrefix, info);
  const plan: TcpPlan = { statPrefix: filter.statPrefix, routeName: route.name, clusterName, cluster: ctx.clusters.get(clusterName) };
  if (denied === null || denied === undefined) return plan;
  // Report mode (Envoy's shadow rules): the connection goes on, its line says what enforce would do.
  return ctx.policyMode === 'report' ? { ...plan, wouldDeny: denied.reason } : { ...plan, denied };
}

/**
 * Envoy's network RBAC filter, as Istio puts it on a gateway's TCP/TLS chains: the connection is
 * checked once (principal, source, SNI as the host, port; no method or path) and, when denied,
 * closed before any upstream connection (flag RBAC, or UAEX for CUSTOM). `tcp.<prefix>.rbac.allowed|denied`.
 */
function rbacDenial(ctx: ProxyContext, statPrefix: string, info: L4Info): TcpPlan['denied'] | null {
  const policies = ctx.snapshot.authorization;
  if (policies === undefined || policies.length === 0) return null;
  ctx.tcpStatsFor(statPrefix); // registers the stat scope, for the Prometheus view of the rbac counters
  const port = Number(info.localAddress.slice(info.localAddress.lastIndexOf(':') + 1));
  const v = evaluateAuthz(policies, {
    principal: principalOf(info.peerUriSan), sourceIp: info.remoteIp, host: info.sni, sni: info.sni,
    port: Number.isInteger(port) ? port : 0, method: null, path: null,
  });
  if (v === null) return null;
  const p = 'tcp.' + sanitizeStatSegment(statPrefix) + '.rbac.';
  if (v.allowed) {
    ctx.stats.counter(p + 'allowed').inc();
    return null;
  }
  ctx.stats.counter(p + (ctx.policyMode === 'report' ? 'shadow_denied' : 'denied')).inc();
  const rescue = rescueFor(v.custom ? ProxyErrorCode.EXT_AUTHZ_DENIED : ProxyErrorCode.RBAC_DENIED);
  return {
    flag: rescue.flags,
    details: v.custom ? rescue.details : `rbac_access_denied_matched_policy[${v.policy}]`,
    reason: (v.custom ? 'ext_authz:' : 'rbac:') + v.policy,
  };
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
