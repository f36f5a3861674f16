// The sidecar's inbound side: Envoy's `virtualInbound` listener on 15006, which `sluice iptables`
// REDIRECTs the pod's incoming TCP to. The proxy recovers the original destination (the pod's own
// port) and serves it as Istio's sidecar does:
//
//   mTLS mode (PeerAuthentication in Istio; `--mtls-mode` / `--mtls-port-mode` here)
//     PERMISSIVE (default)  TLS offering ALPN istio-peer-exchange / istio* -> mTLS terminated with the
//                           workload identity (--certs); anything else (plain text, the app's own
//                           TLS) goes to the app as it came
//     STRICT                any TLS -> mTLS terminated; plain text has no chain (closed, NR)
//     DISABLE               everything goes to the app as it came
//   then, per port of this workload's services:
//     HTTP-ish protocol     HTTP connection manager (stats http.inbound_0.0.0.0_P.), one route to
//                           `inbound|P||`, x-forwarded-client-cert as Istio sets it (APPEND_FORWARD)
//     anything else         TCP proxy to `inbound|P||` (stats tcp.inbound|P||.)
//   any other port          TCP to InboundPassthroughClusterIpv4
//
// `inbound|P||` connects to the app at 127.0.0.1:P from 127.0.0.6 (Istio's inbound clusters of the
// 1.x era and its InboundPassthroughCluster bind that source address; the capture rules return
// traffic from it, so the proxy's own connection to the app is never captured again).
//
// This workload's services: the MESH_INTERNAL ServiceEntries whose `workloadSelector.labels` are a
// subset of the proxy's labels, or that have an endpoint whose (non-empty) `labels` are; the
// endpoint's port for a port name (else `targetPort`, else the number) is the pod's port. That is
// how a Kubernetes Service selects pods; the ServiceEntry stands in for it.

import type { ServicePort } from '../resources/types';
import type { Cluster, DownstreamTls, FilterChain, Inbound, InboundMtlsMode, Listener, NetworkFilter, Route } from './snapshot';
import { ISTIO_MAX_UINT32 } from './snapshot';
import { labelsSubsetOf } from './hosts';
import { buildRouteConfig } from './route-config';
import { singleClusterRoute, tcpProxy } from './tcp-routes';
import { DEFAULT_DNS_REFRESH_MS, workloadCerts } from './traffic-policy';
import { needsInspection } from './sidecar';
import type { Registry } from './registry';
import { retryPolicy } from './route-policies';

/** Istio's inbound default: retry only a reset before the request went out. */
const INBOUND_RETRY_POLICY = retryPolicy({ attempts: 2, retryOn: 'reset-before-request' })!;

const HTTP_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB']);
/** ALPN an Istio client sidecar offers on ISTIO_MUTUAL (Istio's PERMISSIVE chain matches these). */
export const MESH_ALPN: readonly string[] = ['istio-peer-exchange', 'istio', 'istio-http/1.0', 'istio-http/1.1', 'istio-h2'];
export const INBOUND_PASSTHROUGH_CLUSTER = 'InboundPassthroughClusterIpv4';
/** The source address of the proxy's connections to the app (Istio's InboundPassthroughCluster). */
export const INBOUND_SOURCE_ADDRESS = '127.0.0.6';

export function inboundClusterName(port: number): string {
  return `inbound|${port}||`;
}

/** Istio's inbound HCM stat prefix: `inbound_0.0.0.0_8000`. */
function inboundHttpStatPrefix(port: number): string {
  return `inbound_0.0.0.0_${port}`;
}

interface WorkloadPort {
  readonly port: number;
  readonly protocol: string;
}

/** The pod's ports, from the services that select this workload (see the header). */
function workloadPorts(reg: Registry): Map<number, WorkloadPort> {
  const out = new Map<number, WorkloadPort>();
  const add = (p: ServicePort, podPort: number): void => {
    if (p.protocol === 'UDP' || out.has(podPort)) return;
    out.set(podPort, { port: podPort, protocol: p.protocol ?? '' });
  };
  const labels = reg.opts.labels;
  for (const svc of reg.services) {
    if (svc.location !== 'MESH_INTERNAL') continue;
    const spec = svc.entry.spec;
    const sel = spec.workloadSelector?.labels;
    if (sel !== undefined && Object.keys(sel).length > 0 && labelsSubsetOf(sel, labels)) {
      for (const p of svc.ports) add(p, p.targetPort ?? p.number);
      continue;
    }
    for (const we of spec.endpoints ?? []) {
      if (we.labels === undefined || Object.keys(we.labels).length === 0 || !labelsSubsetOf(we.labels, labels)) continue;
      for (const p of svc.ports) add(p, we.ports?.[p.name] ?? p.targetPort ?? p.number);
    }
  }
  return out;
}

function modeFor(reg: Registry, port: number | null): InboundMtlsMode {
  const m = reg.opts.inboundMtls;
  if (m === undefined) return 'PERMISSIVE';
  return port === null ? m.mode : m.ports[port] ?? m.mode;
}

function mtlsSettings(reg: Registry): DownstreamTls {
  const c = workloadCerts(reg.opts.certsDir);
  return {
    mode: 'ISTIO_MUTUAL', certFile: c.certFile, keyFile: c.keyFile, caFile: c.caFile, subjectAltNames: [],
    minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', cipherSuites: null, alpn: [],
  };
}

function httpFilter(port: number): NetworkFilter {
  const cluster = inboundClusterName(port);
  const route: Route = {
    name: 'default',
    source: null,
    match: { uri: null, scheme: null, method: null, authority: null, headers: [], queryParams: [] },
    action: {
      kind: 'forward', clusters: { entries: [{ cluster, weight: 1 }], totalWeight: 1 },
      timeoutMs: 0, rewrite: null, responseHeaders: null,
      // The client's own x-forwarded-client-cert is replaced by the appended one (l7/xfcc.ts).
      requestHeaders: { set: [], add: [], remove: ['x-forwarded-client-cert'] },
      retry: INBOUND_RETRY_POLICY,
    },
  };
  const vh = { name: `inbound|http|${port}`, domains: ['*'], routes: [route] };
  return {
    kind: 'http', statPrefix: inboundHttpStatPrefix(port), routeConfig: buildRouteConfig(cluster, [], vh),
    httpsRedirect: false, forwardClientCert: 'APPEND_FORWARD',
  };
}

/** The mode's chains in front of one filter (`name` prefixes the chain names). */
function modeChains(reg: Registry, name: string, mode: InboundMtlsMode, filter: NetworkFilter): FilterChain[] {
  const any = { serverNames: null, applicationProtocols: null, destinationPrefixes: null } as const;
  if (mode === 'DISABLE') return [{ name: `${name}|plaintext`, match: { ...any, transport: 'any' }, tls: null, filter }];
  const mtls: FilterChain = {
    name: `${name}|mtls`,
    match: { ...any, transport: 'tls', applicationProtocols: mode === 'STRICT' ? null : MESH_ALPN },
    tls: mtlsSettings(reg),
    filter,
  };
  if (mode === 'STRICT') return [mtls];
  return [mtls, { name: `${name}|plaintext`, match: { ...any, transport: 'any' }, tls: null, filter }];
}

function inboundListener(name: string, port: number, chains: FilterChain[], http: boolean): Listener {
  return { name, address: '0.0.0.0', port, protocol: http ? 'http' : 'tcp', chains, needsTlsInspection: needsInspection(chains) };
}

function inboundCluster(name: string, port: number, protocol: string, originalDst: boolean): Cluster {
  return {
    name, sniName: '', type: originalDst ? 'ORIGINAL_DST' : 'STATIC', host: '', port, subset: '', protocol,
    endpoints: originalDst ? [] : [{ address: '127.0.0.1', port, labels: {}, weight: 1, locality: '', network: '' }],
    lb: originalDst ? { kind: 'PASSTHROUGH' } : { kind: 'ROUND_ROBIN' },
    connectTimeoutMs: 10_000, idleTimeoutMs: 3_600_000, maxRequestsPerConnection: 0, tcpKeepalive: null,
    dnsRefreshMs: DEFAULT_DNS_REFRESH_MS,
    circuitBreakers: { maxConnections: ISTIO_MAX_UINT32, maxPendingRequests: ISTIO_MAX_UINT32, maxRequests: ISTIO_MAX_UINT32, maxRetries: ISTIO_MAX_UINT32 },
    tls: null, emptyReason: null,
    upstreamBindAddress: INBOUND_SOURCE_ADDRESS,
    ...(originalDst ? { originalDstOnLoopback: true } : {}),
  };
}

/** The inbound listeners, and their clusters added to `clusters`. */
export function buildInbound(reg: Registry, clusters: Map<string, Cluster>): Inbound {
  const ports = new Map<number, Listener>();
  for (const wp of workloadPorts(reg).values()) {
    const cluster = inboundClusterName(wp.port);
    const http = HTTP_PROTOCOLS.has(wp.protocol);
    clusters.set(cluster, inboundCluster(cluster, wp.port, wp.protocol, false));
    const filter = http ? httpFilter(wp.port) : tcpProxy([singleClusterRoute('default', cluster, null)], cluster);
    ports.set(wp.port, inboundListener(`virtualInbound|${wp.port}`, wp.port, modeChains(reg, `0.0.0.0_${wp.port}`, modeFor(reg, wp.port), filter), http));
  }
  clusters.set(INBOUND_PASSTHROUGH_CLUSTER, inboundCluster(INBOUND_PASSTHROUGH_CLUSTER, 0, '', true));
  const passFilter = tcpProxy([singleClusterRoute(INBOUND_PASSTHROUGH_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, null)], INBOUND_PASSTHROUGH_CLUSTER);
  const defaultMode = modeFor(reg, null);
  return {
    ports,
    passthrough: inboundListener('virtualInbound', 0, modeChains(reg, 'virtualInbound', defaultMode, passFilter), false),
    defaultMode,
  };
}
