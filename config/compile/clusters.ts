// Clusters: one `outbound|PORT||HOST` per visible ServiceEntry host x port, one
// `outbound|PORT|SUBSET|HOST` per DestinationRule subset of that host, plus PassthroughCluster and
// BlackHoleCluster, which always exist. Like Istio, clusters exist for
// every visible service, not only for the ones a route names.

import type { DestinationRule, ServicePort } from '../resources/types';
import type { Cluster, DiscoveryType, Endpoint, Role } from './snapshot';
import { BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER } from './snapshot';
import { ConfigErrorCode } from '../errors';
import { clusterName, isClusterLocalHost, sniName } from './names';
import { labelsSubsetOf } from './hosts';
import { applyLocalityLb } from './locality';
import { DEFAULT_DNS_REFRESH_MS, lbPolicy, mergeTrafficPolicy, outlierConfig, poolSettings, upstreamTls, warmupConfig } from './traffic-policy';
import type { Registry, Service } from './registry';

/**
 * Resolution -> discovery type (Istio `convertResolution`, §1.1): NONE is ORIGINAL_DST on
 * sidecars, but gateways cannot use passthrough clusters and fall back to EDS with no endpoints.
 */
function discoveryType(svc: Service, role: Role): DiscoveryType {
  switch (svc.resolution) {
    case 'STATIC': return 'EDS';
    case 'DNS': return 'STRICT_DNS';
    case 'DNS_ROUND_ROBIN': return 'LOGICAL_DNS';
    default: return role === 'sidecar' ? 'ORIGINAL_DST' : 'EDS';
  }
}

interface EndpointSet {
  readonly endpoints: readonly Endpoint[];
  readonly emptyReason: string | null;
}

/**
 * Split-horizon endpoints (Istio `EndpointsByNetworkFilter`, the multicluster-gateways setup of seed
 * S8): a proxy keeps the endpoints of its own network; each other network's endpoints are replaced
 * by that network's gateways (`networkGateways`, Istio's meshNetworks), or dropped when none is
 * known. So a ServiceEntry listing a remote gateway (`network: external`) and the local egress
 * gateway sends everything from a sidecar through the egress gateway, never half of it straight
 * out; the egress gateway, run with `--network external`, sees only the remote gateway.
 */
function networkView(reg: Registry, svc: Service, all: readonly Endpoint[]): EndpointSet {
  const own = reg.opts.network ?? '';
  const out: Endpoint[] = [];
  const foreign = new Map<string, number>();
  for (const e of all) {
    if (e.network === own) out.push(e);
    else foreign.set(e.network, (foreign.get(e.network) ?? 0) + e.weight);
  }
  if (foreign.size === 0) return { endpoints: all, emptyReason: null };
  const unreachable: string[] = [];
  for (const [network, weight] of foreign) {
    const gws = reg.opts.networkGateways?.[network] ?? [];
    if (gws.length === 0) unreachable.push(network === '' ? '(default)' : network);
    for (const gw of gws) {
      const colon = gw.lastIndexOf(':');
      out.push({ address: gw.slice(0, colon), port: Number(gw.slice(colon + 1)), labels: {}, weight, locality: '', network });
    }
  }
  if (out.length > 0) return { endpoints: out, emptyReason: null };
  return {
    endpoints: [],
    emptyReason: `every endpoint of ${svc.host} is on another network (${unreachable.join(', ')}) than this proxy's (${own === '' ? 'the default network' : own}) and no gateway is known for it: run the proxy with --network NAME (Istio's REQUESTED_NETWORK_VIEW) or --network-gateway NAME=ADDRESS:PORT`,
  };
}

function serviceEndpoints(reg: Registry, svc: Service, port: ServicePort, type: DiscoveryType): EndpointSet {
  if (type === 'ORIGINAL_DST') return { endpoints: [], emptyReason: null };
  if (svc.resolution === 'NONE' || svc.resolution === 'DYNAMIC_DNS') {
    return { endpoints: [], emptyReason: `resolution ${svc.resolution} on a gateway: no endpoints (Istio falls back to EDS, not passthrough)` };
  }
  const defaultPort = port.targetPort ?? port.number;
  const out: Endpoint[] = [];
  for (const we of svc.entry.spec.endpoints ?? []) {
    if (we.address === undefined) continue;
    out.push({
      address: we.address,
      port: we.ports?.[port.name] ?? defaultPort,
      labels: we.labels ?? {},
      weight: we.weight ?? 1,
      locality: we.locality ?? '',
      network: we.network ?? '',
    });
  }
  if (out.length > 0) return networkView(reg, svc, out);
  if ((svc.resolution === 'DNS' || svc.resolution === 'DNS_ROUND_ROBIN') && !svc.host.startsWith('*')) {
    // DNS without endpoints resolves the host itself (service_entry.proto `resolution`).
    return { endpoints: [{ address: svc.host, port: defaultPort, labels: {}, weight: 1, locality: '', network: '' }], emptyReason: null };
  }
  if (svc.entry.spec.workloadSelector !== undefined) {
    return { endpoints: [], emptyReason: 'endpoints come from workloadSelector, which sluice does not discover' };
  }
  return { endpoints: [], emptyReason: `resolution ${svc.resolution} with no endpoints` };
}

function buildCluster(
  reg: Registry, svc: Service, port: ServicePort, dr: DestinationRule | null, subsetIndex: number, name: string, sni: string,
  withTls: boolean,
): Cluster {
  const type = discoveryType(svc, reg.opts.role);
  const base = serviceEndpoints(reg, svc, port, type);
  const subset = subsetIndex >= 0 ? dr!.spec.subsets![subsetIndex]! : null;
  let endpoints = base.endpoints;
  let emptyReason = base.emptyReason;
  if (subset !== null && type !== 'ORIGINAL_DST') {
    endpoints = endpoints.filter((e) => labelsSubsetOf(subset.labels, e.labels));
    if (endpoints.length === 0 && base.endpoints.length > 0) {
      emptyReason = `subset ${subset.name} selects no endpoints`;
      reg.warn(ConfigErrorCode.TRAP, dr!, `spec.subsets[${subsetIndex}].labels`,
        `subset ${subset.name} selects no endpoints of ${svc.host}: requests routed to it get 503 UH`);
    }
  }
  const policy = mergeTrafficPolicy(dr?.spec.trafficPolicy, subset?.trafficPolicy, port.number);
  const pool = poolSettings(policy.connectionPool);
  const outlier = outlierConfig(policy.outlierDetection);
  endpoints = applyLocalityLb(endpoints, policy.loadBalancer?.localityLbSetting, reg.opts.locality ?? '', reg.opts.labels, outlier !== null);
  const http2 = upstreamHttp2(port, policy.connectionPool?.http?.h2UpgradePolicy);
  let tls = withTls ? upstreamTls(policy.tls, reg.opts.certsDir, sni, svc.entry.spec.subjectAltNames ?? []) : null;
  // HTTP/2 over originated TLS is negotiated by ALPN: Istio appends h2 (cluster_tls.go).
  if (tls !== null && http2) tls = { ...tls, alpn: [...tls.alpn, 'h2'] };
  return {
    name,
    sniName: sni,
    type,
    host: svc.host,
    port: port.number,
    subset: subset?.name ?? '',
    protocol: port.protocol ?? '',
    endpoints,
    lb: type === 'ORIGINAL_DST' ? { kind: 'PASSTHROUGH' } : lbPolicy(policy.loadBalancer),
    connectTimeoutMs: pool.connectTimeoutMs,
    idleTimeoutMs: pool.idleTimeoutMs,
    maxRequestsPerConnection: pool.maxRequestsPerConnection,
    http2,
    tcpKeepalive: pool.tcpKeepalive,
    dnsRefreshMs: DEFAULT_DNS_REFRESH_MS,
    circuitBreakers: pool.circuitBreakers,
    tls,
    emptyReason: endpoints.length === 0 ? emptyReason : null,
    outlierDetection: outlier,
    warmup: warmupConfig(policy.loadBalancer),
  };
}

const H2_PROTOCOLS = new Set(['HTTP2', 'GRPC', 'GRPC-WEB']);

/**
 * Istio's choice of the upstream codec (cluster_builder.go: isHttp2 from the port's protocol, else
 * from its name prefix as protocol.Parse reads `grpc-x` / `http2-x`; h2UpgradePolicy UPGRADE
 * upgrades plain HTTP ports).
 */
function upstreamHttp2(port: ServicePort, h2Upgrade: string | undefined): boolean {
  const byName = port.name.split('-')[0]!.toUpperCase();
  const protocol = port.protocol ?? (byName === 'GRPC' || byName === 'HTTP2' || byName === 'HTTP' ? byName : undefined);
  if (protocol !== undefined && H2_PROTOCOLS.has(protocol)) return true;
  return h2Upgrade === 'UPGRADE' && protocol === 'HTTP';
}

const SPECIAL_DEFAULTS = {
  sniName: '', host: '', port: 0, subset: '', protocol: '', endpoints: [],
  connectTimeoutMs: 10_000, idleTimeoutMs: 3_600_000, maxRequestsPerConnection: 0, tcpKeepalive: null,
  dnsRefreshMs: DEFAULT_DNS_REFRESH_MS, tls: null,
} as const;

function specialClusters(): Cluster[] {
  const cb = poolSettings(undefined).circuitBreakers;
  return [
    { ...SPECIAL_DEFAULTS, name: PASSTHROUGH_CLUSTER, type: 'ORIGINAL_DST', lb: { kind: 'PASSTHROUGH' }, circuitBreakers: cb, emptyReason: null },
    {
      ...SPECIAL_DEFAULTS, name: BLACKHOLE_CLUSTER, type: 'STATIC', lb: { kind: 'ROUND_ROBIN' }, circuitBreakers: cb,
      emptyReason: 'BlackHoleCluster: the destination is not in the registry and the outbound policy is REGISTRY_ONLY',
    },
  ];
}

/** All clusters, in a stable order: per service (load order) base then subsets, then specials. */
export function buildClusters(reg: Registry): Map<string, Cluster> {
  const out = new Map<string, Cluster>();
  for (const svc of reg.services) {
    const dr = reg.destinationRuleFor(svc.host, svc.entry.metadata.namespace);
    for (const port of svc.ports) {
      const base = clusterName(port.number, '', svc.host);
      out.set(base, buildCluster(reg, svc, port, dr, -1, base, sniName(port.number, '', svc.host), true));
      (dr?.spec.subsets ?? []).forEach((s, i) => {
        const name = clusterName(port.number, s.name, svc.host);
        out.set(name, buildCluster(reg, svc, port, dr, i, name, sniName(port.number, s.name, svc.host), true));
      });
    }
  }
  for (const c of specialClusters()) out.set(c.name, c);
  return out;
}

/**
 * AUTO_PASSTHROUGH "SNI-DNAT" clusters (Istio `buildOutboundSniDnatClusters`):
 * named by the SNI string, same endpoints as the outbound cluster, no TLS origination: the
 * client's mTLS bytes are passed through untouched. Built only for MESH_INTERNAL services. Subsets
 * are this proxy's DestinationRules' (null when none defines `subsetName`).
 *
 * A gateway never forwards to itself: an endpoint that is a Kubernetes service of this cluster on
 * the listener's own port (the seed's S8 lists `istio-egressgateway.istio-system.svc.cluster.local`
 * port 15443 beside the remote gateway) is this gateway or a replica of it, and connecting there
 * would loop; it is dropped with a warning.
 */
export function sniDnatCluster(reg: Registry, svc: Service, port: ServicePort, subsetName: string, listenerPort: number): Cluster | null {
  const dr = reg.destinationRuleFor(svc.host, svc.entry.metadata.namespace);
  const index = subsetName === '' ? -1 : (dr?.spec.subsets ?? []).findIndex((s) => s.name === subsetName);
  if (subsetName !== '' && index < 0) return null;
  const name = sniName(port.number, subsetName, svc.host);
  const c = buildCluster(reg, svc, port, dr, index, name, name, false);
  const endpoints = c.endpoints.filter((e) => !(e.port === listenerPort && isClusterLocalHost(e.address) && reg.servicesByHost.has(e.address)));
  if (endpoints.length === c.endpoints.length) return c;
  // The gateway's own Service on its own port: nothing to say, it is simply not a destination.
  if (!c.endpoints.some((e) => e.address === svc.host)) reg.warn(ConfigErrorCode.TRAP, svc.entry, 'spec.endpoints',
    `endpoint ${c.endpoints.find((e) => !endpoints.includes(e))!.address}:${listenerPort} of ${svc.host} is a service of this cluster on this gateway's own port ${listenerPort}: the gateway would connect to itself, so ${name} leaves it out` +
    (endpoints.length === 0 ? ' and has no endpoints (503 UH); run this gateway with --network NAME so that it sees the remote network\'s endpoints (Istio REQUESTED_NETWORK_VIEW)' : ''));
  return {
    ...c, endpoints,
    emptyReason: endpoints.length > 0 ? null : `the only endpoints of ${svc.host} are this gateway itself (a service of this cluster on port ${listenerPort}); run the gateway with --network NAME to see the remote network's endpoints`,
  };
}
