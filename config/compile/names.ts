// Istio's names for the things the compiler builds. Kept in one place because users grep stats,
// access logs and /config_dump for exactly these strings.

/** `outbound|80|cnn|istio-egressgateway.istio-system.svc.cluster.local` (Istio `BuildSubsetKey`). */
export function clusterName(port: number, subset: string, host: string): string {
  return `outbound|${port}|${subset}|${host}`;
}

/**
 * `outbound_.80_.cnn_.host`, and `outbound_.80_._.host` for no subset (Istio `BuildDNSSrvSubsetKey`
 * joins with `_.`, so the empty subset shows up as a lone `_`). It is the SNI an ISTIO_MUTUAL
 * client sends and the name of the SNI-DNAT cluster an AUTO_PASSTHROUGH gateway forwards to.
 */
export function sniName(port: number, subset: string, host: string): string {
  return `outbound_.${port}_.${subset}_.${host}`;
}

export const WILDCARD_ADDRESS = '0.0.0.0';

/** `0.0.0.0_80`, `198.18.0.9_3306` (Istio listener names). */
export function listenerName(address: string, port: number): string {
  return `${address}_${port}`;
}

/** HCM stat prefix: `outbound_` + listener name (`I:…/core/listener.go`, `…/core/gateway.go`). */
export function httpStatPrefix(listener: string): string {
  return `outbound_${listener}`;
}

/** Gateway route config names (`I:pilot/pkg/model/gateway.go` `gatewayRDSRouteName`). */
export function gatewayPlainRouteName(port: number): string {
  return `http.${port}`;
}

export function gatewayTlsRouteName(port: number, portName: string, gwName: string, gwNamespace: string): string {
  return `https.${port}.${portName}.${gwName}.${gwNamespace}`;
}

/** The VS-level `mesh` pseudo-gateway: all sidecars. */
export const MESH_GATEWAY = 'mesh';

const CLUSTER_SUFFIX = '.svc.cluster.local';

/**
 * Short names (no dot) in VirtualService hosts/destinations and DestinationRule hosts mean a
 * Kubernetes service in the resource's own namespace ("Short host names
 * resolve in the VS's namespace"). `*` stays `*`. Host names are case-insensitive: lower-case.
 */
export function expandHost(host: string, namespace: string): string {
  const h = host.toLowerCase();
  if (h === '*' || h.includes('.')) return h;
  return `${h}.${namespace}${CLUSTER_SUFFIX}`;
}

/**
 * Resolve a VirtualService `gateways` entry to `namespace/name` (Istio `resolveGatewayName`):
 * `gw` -> `<vsns>/gw`, `./gw` -> `<vsns>/gw`, `ns/gw` as is, legacy
 * `gw.ns.svc.cluster.local` (any dotted name) -> `ns/gw`; `mesh` stays `mesh`.
 */
export function resolveGatewayName(name: string, vsNamespace: string): string {
  if (name === MESH_GATEWAY) return name;
  const slash = name.indexOf('/');
  if (slash >= 0) {
    const ns = name.slice(0, slash);
    return ns === '.' ? `${vsNamespace}/${name.slice(slash + 1)}` : name;
  }
  if (name.includes('.')) {
    const parts = name.split('.');
    return `${parts[1]}/${parts[0]}`;
  }
  return `${vsNamespace}/${name}`;
}

/**
 * The `.global` name of a local Kubernetes service (`httpbin.bar.svc.cluster.local` ->
 * `httpbin.bar.global`), null for any other host. Istio 1.1-1.7's multicluster gateways mapped the
 * one to the other on port 15443 with `tcp_cluster_rewrite` (`cluster_pattern: "\\.global$"`,
 * `cluster_replacement: ".svc.cluster.local"`): a remote cluster names the service `.global`, the
 * gateway routes it to the local one.
 */
export function globalAliasOf(host: string): string | null {
  if (!host.endsWith(CLUSTER_SUFFIX)) return null;
  const parts = host.slice(0, -CLUSTER_SUFFIX.length).split('.');
  return parts.length === 2 ? `${parts[0]}.${parts[1]}.global` : null;
}

/** A host of a Kubernetes service of this cluster (`*.svc.cluster.local`). */
export function isClusterLocalHost(host: string): boolean {
  return host.endsWith(CLUSTER_SUFFIX);
}

/**
 * Extra Host header spellings that reach a Kubernetes-style service: `name.ns.svc`, `name.ns`,
 * and bare `name` from the same namespace (Istio `generateVirtualHostDomains`).
 */
export function shortDomainsOf(host: string, proxyNamespace: string): string[] {
  if (!host.endsWith(CLUSTER_SUFFIX)) return [];
  const parts = host.slice(0, -CLUSTER_SUFFIX.length).split('.');
  if (parts.length !== 2) return [];
  const [name, ns] = parts as [string, string];
  const out = [`${name}.${ns}.svc`, `${name}.${ns}`];
  if (ns === proxyNamespace) out.push(name);
  return out;
}
