// Kubernetes Services + EndpointSlices -> the mesh services Istio's Kubernetes registry makes of
// them, written as the ServiceEntries the compiler already knows (config/compile/registry.ts:
// one service per host): host NAME.NS.svc.cluster.local, location MESH_INTERNAL, the cluster IP
// as the address, resolution STATIC with the ready endpoints of the Service's EndpointSlices.
// So `istio-egressgateway.istio-system.svc.cluster.local` is routable with no hand-written
// ServiceEntry, as in Istio.
//
// As Istio (pilot/pkg/serviceregistry/kube/conversion.go, pkg/config/protocol):
//   - protocol: a UDP port is UDP; else `appProtocol` (also kubernetes.io/h2c = HTTP2,
//     kubernetes.io/ws = HTTP, kubernetes.io/wss = HTTPS); else the port name, whole or up to the
//     first `-` (`http-web`, `grpc`, `tcp-db`); else undefined, which is Istio's auto-detect;
//   - an endpoint counts unless `conditions.ready` is false (absent = ready), its first address
//     is used (all addresses of one endpoint are the same pod), its ports come from its slice;
//   - endpoint labels are the pod's (targetRef), so DestinationRule subsets select endpoints;
//   - `networking.istio.io/exportTo` on the Service is its exportTo;
//   - ExternalName: resolution DNS to the external name, MESH_EXTERNAL.
// Where sluice differs: a headless Service (clusterIP None) is STATIC to its endpoints with no
// address; Istio makes it Passthrough (original destination), which a gateway cannot use.

import type { Protocol, ServiceEntry, ServicePort, WorkloadEntry } from '../../resources/types';
import type { KubeObject } from './client';

export const CLUSTER_DOMAIN = 'cluster.local';
const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
const EXPORT_TO_ANNOTATION = 'networking.istio.io/exportTo';

const PROTOCOL_NAMES: Readonly<Record<string, Protocol>> = {
  http: 'HTTP', http2: 'HTTP2', https: 'HTTPS', grpc: 'GRPC', 'grpc-web': 'GRPC-WEB', http_proxy: 'HTTP_PROXY',
  tcp: 'TCP', tls: 'TLS', udp: 'UDP', mongo: 'MONGO', redis: 'REDIS', mysql: 'MYSQL',
  'kubernetes.io/h2c': 'HTTP2', 'kubernetes.io/ws': 'HTTP', 'kubernetes.io/wss': 'HTTPS',
};

interface KubeServicePort {
  readonly name?: string;
  readonly port?: number;
  readonly protocol?: string;
  readonly appProtocol?: string;
  readonly targetPort?: number | string;
}

interface KubeEndpointSlice {
  readonly addressType?: string;
  readonly ports?: readonly { readonly name?: string; readonly port?: number }[];
  readonly endpoints?: readonly {
    readonly addresses?: readonly string[];
    readonly conditions?: { readonly ready?: boolean | null };
    readonly targetRef?: { readonly kind?: string; readonly name?: string; readonly namespace?: string };
  }[];
}

/** Istio's protocol for a Service port. */
export function portProtocol(p: KubeServicePort): Protocol | undefined {
  if (p.protocol === 'UDP') return 'UDP';
  const app = p.appProtocol?.toLowerCase();
  if (app !== undefined && PROTOCOL_NAMES[app] !== undefined) return PROTOCOL_NAMES[app];
  const name = (p.name ?? '').toLowerCase();
  const prefix = name.split('-')[0]!;
  return PROTOCOL_NAMES[name] ?? PROTOCOL_NAMES[prefix];
}

/** Keeps what the translation reads of a Service: a 10,000-Service store holds no managedFields. */
export function slimService(o: KubeObject): KubeObject {
  const md = o.metadata ?? {};
  const spec = (o['spec'] ?? {}) as Record<string, unknown>;
  return {
    apiVersion: o.apiVersion, kind: o.kind,
    metadata: { name: md.name, namespace: md.namespace, resourceVersion: md.resourceVersion, labels: md.labels, annotations: pick(md.annotations, EXPORT_TO_ANNOTATION) },
    spec: { type: spec['type'], clusterIP: spec['clusterIP'], clusterIPs: spec['clusterIPs'], externalName: spec['externalName'], ports: spec['ports'] },
  };
}

export function slimEndpointSlice(o: KubeObject): KubeObject {
  const md = o.metadata ?? {};
  return {
    apiVersion: o.apiVersion, kind: o.kind,
    metadata: { name: md.name, namespace: md.namespace, resourceVersion: md.resourceVersion, labels: pick(md.labels, SERVICE_NAME_LABEL) },
    addressType: o['addressType'], ports: o['ports'],
    endpoints: ((o['endpoints'] ?? []) as KubeEndpointSlice['endpoints'] & object[]).map((e) => ({ addresses: e.addresses, conditions: e.conditions, targetRef: e.targetRef })),
  };
}

export function slimPod(o: KubeObject): KubeObject {
  const md = o.metadata ?? {};
  return { apiVersion: o.apiVersion, kind: o.kind, metadata: { name: md.name, namespace: md.namespace, resourceVersion: md.resourceVersion, labels: md.labels } };
}

function pick(m: Record<string, string> | undefined, key: string): Record<string, string> | undefined {
  return m?.[key] === undefined ? undefined : { [key]: m[key] };
}

export interface ServiceInputs {
  readonly services: Iterable<KubeObject>;
  readonly endpointSlices: Iterable<KubeObject>;
  /** `namespace/name` -> pod labels (empty when pods are not watched). */
  readonly podLabels: ReadonlyMap<string, Readonly<Record<string, string>>>;
}

/**
 * Every Service as a ServiceEntry, in `namespace/name` order (a stable order keeps the snapshot
 * version stable). Remembers each translation: a Service whose object, slices and (when it has
 * pod endpoints) pods are the same as last time gives the same, already frozen, ServiceEntry, so a
 * change to one of 10,000 Services translates one.
 */
export class MeshServices {
  private cache = new Map<string, { readonly svc: KubeObject; readonly slices: readonly KubeEndpointSlice[]; readonly podsVersion: number; readonly se: ServiceEntry | null }>();

  build(inputs: ServiceInputs, podsVersion = 0): ServiceEntry[] {
    const slicesByService = new Map<string, KubeEndpointSlice[]>();
    for (const s of inputs.endpointSlices) {
      const svc = s.metadata?.labels?.[SERVICE_NAME_LABEL];
      if (svc === undefined) continue;
      const k = `${s.metadata?.namespace ?? ''}/${svc}`;
      const list = slicesByService.get(k);
      if (list === undefined) slicesByService.set(k, [s as KubeEndpointSlice]);
      else list.push(s as KubeEndpointSlice);
    }
    const keyed = [...inputs.services].map((o) => ({ k: key(o), o }));
    keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
    const next: typeof this.cache = new Map();
    const out: ServiceEntry[] = [];
    for (const { k, o } of keyed) {
      const slices = slicesByService.get(k) ?? [];
      const old = this.cache.get(k);
      const reusable = old !== undefined && old.svc === o && sameItems(old.slices, slices)
        && (old.podsVersion === podsVersion || !slices.some((sl) => sl.endpoints?.some((e) => e.targetRef?.kind === 'Pod')));
      const entry = reusable ? { ...old, podsVersion } : { svc: o, slices, podsVersion, se: meshService(o, slices, inputs.podLabels) };
      next.set(k, entry);
      if (entry.se !== null) out.push(entry.se);
    }
    this.cache = next;
    return out;
  }
}

/** Stateless: every Service translated (tests, one-off use). */
export function meshServices(inputs: ServiceInputs): ServiceEntry[] {
  return new MeshServices().build(inputs);
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function key(o: KubeObject): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}

function meshService(svc: KubeObject, slices: readonly KubeEndpointSlice[], podLabels: ServiceInputs['podLabels']): ServiceEntry | null {
  const name = svc.metadata?.name;
  const namespace = svc.metadata?.namespace;
  if (typeof name !== 'string' || typeof namespace !== 'string') return null;
  const spec = (svc['spec'] ?? {}) as { type?: string; clusterIP?: string; clusterIPs?: string[]; externalName?: string; ports?: KubeServicePort[] };
  const ports: ServicePort[] = [];
  for (const p of spec.ports ?? []) {
    if (typeof p.port !== 'number' || p.protocol === 'SCTP') continue;
    const protocol = portProtocol(p);
    ports.push({
      number: p.port, name: p.name ?? '',
      ...(protocol !== undefined ? { protocol } : {}),
      ...(typeof p.targetPort === 'number' ? { targetPort: p.targetPort } : {}),
    });
  }
  const exportTo = svc.metadata?.annotations?.[EXPORT_TO_ANNOTATION]?.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const base = {
    kind: 'ServiceEntry' as const,
    apiVersion: 'v1',
    metadata: { name, namespace, ...(svc.metadata?.labels !== undefined ? { labels: svc.metadata.labels } : {}) },
    origin: { file: `api/v1/namespaces/${namespace}/services/${name}`, doc: 1 },
  };
  const hosts = [`${name}.${namespace}.svc.${CLUSTER_DOMAIN}`];
  if (spec.type === 'ExternalName') {
    if (spec.externalName === undefined || spec.externalName === '') return null;
    return { ...base, spec: { hosts, ports, location: 'MESH_EXTERNAL', resolution: 'DNS', endpoints: [{ address: spec.externalName }], ...(exportTo !== undefined ? { exportTo } : {}) } };
  }
  const ips = (spec.clusterIPs ?? (spec.clusterIP !== undefined ? [spec.clusterIP] : [])).filter((ip) => ip !== '' && ip !== 'None');
  const endpoints: WorkloadEntry[] = [];
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue;
    const slicePorts: Record<string, number> = {};
    for (const p of slice.ports ?? []) if (typeof p.port === 'number') slicePorts[p.name ?? ''] = p.port;
    for (const e of slice.endpoints ?? []) {
      if (e.conditions?.ready === false) continue;
      const address = e.addresses?.[0];
      if (address === undefined) continue;
      const ref = e.targetRef;
      const labels = ref?.kind === 'Pod' && ref.name !== undefined ? podLabels.get(`${ref.namespace ?? namespace}/${ref.name}`) : undefined;
      endpoints.push({ address, ports: slicePorts, ...(labels !== undefined ? { labels } : {}) });
    }
  }
  return {
    ...base,
    spec: {
      hosts, ports, addresses: ips, location: 'MESH_INTERNAL', resolution: 'STATIC', endpoints,
      ...(exportTo !== undefined ? { exportTo } : {}),
    },
  };
}
