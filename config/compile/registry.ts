// What this proxy can see, indexed once per compile: visible ServiceEntries as services (one per
// host), DestinationRules by host, VirtualServices with their gateways resolved and hosts
// expanded, and the warning collector. Every other compile step reads from here.

import type {
  DestinationRule, Destination, Resources, ServiceEntry, ServicePort, VirtualService, Location, Resolution, Resource,
} from '../resources/types';
import type { ConfigMessage, InboundMtlsMode, OutboundPolicy, Role } from './snapshot';
import { configMessage, ConfigErrorCode, type ConfigErrorCodeValue } from '../errors';
import { clusterName, expandHost, MESH_GATEWAY, resolveGatewayName } from './names';
import { labelsSubsetOf } from './hosts';
import { allocateVips } from './vip-allocation';

export interface CompileOptions {
  readonly role: Role;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly outboundPolicy: OutboundPolicy;
  readonly certsDir: string;
  /**
   * The proxy's network (`--network`, Istio's ISTIO_META_NETWORK / REQUESTED_NETWORK_VIEW); absent
   * = '' (the default network). Endpoints on another network are reached through that network's
   * gateway (`networkGateways`), or not at all (clusters.ts `networkView`).
   */
  readonly network?: string;
  /** Gateways of other networks, as Istio's meshNetworks: network name -> `address:port` list. */
  readonly networkGateways?: Readonly<Record<string, readonly string[]>>;
  /** The proxy's locality `region/zone/subzone` (`--locality`, Istio's node locality): localityLbSetting. */
  readonly locality?: string;
  /**
   * Sidecar inbound mTLS (`--mtls-mode`, `--mtls-port-mode P=MODE`), what a PeerAuthentication
   * says in Istio; absent = PERMISSIVE everywhere, Istio's default.
   */
  readonly inboundMtls?: { readonly mode: InboundMtlsMode; readonly ports: Readonly<Record<number, InboundMtlsMode>> };
  /**
   * Sidecar `--dns-capture` (Istio's ISTIO_META_DNS_CAPTURE + DNS_AUTO_ALLOCATE): hosts without
   * `addresses` get a VIP from 240.240.0.0/16 (config/compile/dns.ts), and the snapshot carries the
   * name -> address table the DNS proxy answers from.
   */
  readonly dnsCapture?: boolean;
}

/** One host of one visible ServiceEntry (Istio builds one model.Service per host). */
export interface Service {
  readonly host: string;
  readonly entry: ServiceEntry;
  readonly ports: readonly ServicePort[];
  readonly addresses: readonly string[];
  readonly resolution: Resolution;
  readonly location: Location;
}

export interface BoundVirtualService {
  readonly vs: VirtualService;
  /** Resolved `ns/name` or `mesh`; absent in the YAML = [mesh]. */
  readonly gateways: readonly string[];
  /** Expanded, lower-case. */
  readonly hosts: readonly string[];
}

/** Where a rule is evaluated: `mesh` (sidecar) or one gateway `ns/name`, on one port. */
export interface RuleScope {
  readonly gateway: string;
  readonly port: number;
}

/**
 * exportTo: absent/empty or `*` = everywhere; `.` = the resource's own
 * namespace; otherwise a list of namespaces.
 */
function visibleTo(exportTo: readonly string[] | undefined, resourceNs: string, proxyNs: string): boolean {
  if (exportTo === undefined || exportTo.length === 0) return true;
  for (const e of exportTo) {
    if (e === '*') return true;
    if (e === '.' && resourceNs === proxyNs) return true;
    if (e === proxyNs) return true;
  }
  return false;
}

/**
 * Host-keyed index in load order. `exact`: every rule by its host as written (expanded), wildcards
 * included, since a wildcard service host equal to a wildcard rule host is an exact match;
 * `suffix`: `*.x.com` rules by `.x.com`; `any`: `*` rules. A host's wildcard candidates are then
 * found by looking up each of its suffixes instead of testing every rule (hostCovers semantics:
 * `*.x.com` covers names strictly longer than `.x.com` that end with it).
 */
interface DrIndex {
  readonly exact: Map<string, DestinationRule[]>;
  readonly suffix: Map<string, DestinationRule[]>;
  readonly any: DestinationRule[];
}

/** As DrIndex, keeping only the first (lowest) VirtualService index per key. */
interface VsIndex {
  readonly exact: Map<string, number>;
  readonly suffix: Map<string, number>;
  any: number;
}

function pushTo<V>(m: Map<string, V[]>, key: string, v: V): void {
  const list = m.get(key);
  if (list === undefined) m.set(key, [v]);
  else list.push(v);
}

export function resourceName(r: Resource): string {
  return `${r.kind}/${r.metadata.name}`;
}

export class Registry {
  readonly opts: CompileOptions;
  readonly resources: Resources;
  readonly services: readonly Service[];
  readonly servicesByHost: ReadonlyMap<string, Service>;
  readonly virtualServices: readonly BoundVirtualService[];
  /** Visible DestinationRules by expanded host (see destinationRuleFor). */
  private readonly drIndex: DrIndex;
  /** Mesh-bound VirtualServices by host: index into `virtualServices` of the first claimant. */
  private readonly vsIndex: VsIndex;
  private readonly messages: ConfigMessage[] = [];
  private readonly seenMessages = new Set<string>();

  constructor(resources: Resources, opts: CompileOptions) {
    this.opts = opts;
    this.resources = resources;
    const proxyNs = opts.namespace;

    const services: Service[] = [];
    const byHost = new Map<string, Service>();
    for (const se of resources.serviceEntries) {
      if (!visibleTo(se.spec.exportTo, se.metadata.namespace, proxyNs)) continue;
      se.spec.hosts.forEach((raw, i) => {
        const host = raw.toLowerCase();
        const existing = byHost.get(host);
        if (existing !== undefined) {
          // Istio keeps the oldest; file order stands in for creation time.
          this.warn(ConfigErrorCode.TRAP, se, `spec.hosts[${i}]`,
            `host ${host} is already declared by ${resourceName(existing.entry)} (${existing.entry.origin.file}:${existing.entry.origin.doc}); this declaration is ignored`);
          return;
        }
        const svc: Service = {
          host,
          entry: se,
          ports: se.spec.ports ?? [],
          addresses: se.spec.addresses ?? [],
          resolution: se.spec.resolution ?? 'NONE',
          location: se.spec.location ?? 'MESH_EXTERNAL',
        };
        services.push(svc);
        byHost.set(host, svc);
      });
    }
    if (opts.dnsCapture === true && opts.role === 'sidecar') allocateVips(services, byHost);
    this.services = services;
    this.servicesByHost = byHost;

    const drIndex: DrIndex = { exact: new Map(), suffix: new Map(), any: [] };
    for (const dr of resources.destinationRules) {
      if (!visibleTo(dr.spec.exportTo, dr.metadata.namespace, proxyNs)) continue;
      // A DR with workloadSelector applies only to the workloads it selects.
      if (dr.spec.workloadSelector !== undefined && !labelsSubsetOf((dr.spec.workloadSelector.matchLabels ?? {}), opts.labels)) continue;
      const host = expandHost(dr.spec.host, dr.metadata.namespace);
      pushTo(drIndex.exact, host, dr);
      if (host === '*') drIndex.any.push(dr);
      else if (host.startsWith('*.')) pushTo(drIndex.suffix, host.slice(1), dr);
    }
    this.drIndex = drIndex;

    this.virtualServices = resources.virtualServices
      .filter((vs) => visibleTo(vs.spec.exportTo, vs.metadata.namespace, proxyNs))
      .map((vs) => ({
        vs,
        gateways: (vs.spec.gateways === undefined || vs.spec.gateways.length === 0 ? [MESH_GATEWAY] : vs.spec.gateways)
          .map((g) => resolveGatewayName(g, vs.metadata.namespace)),
        hosts: (vs.spec.hosts ?? []).map((h) => expandHost(h, vs.metadata.namespace)),
      }));
    const vsIndex: VsIndex = { exact: new Map(), suffix: new Map(), any: Infinity };
    this.virtualServices.forEach((b, i) => {
      if (!b.gateways.includes(MESH_GATEWAY)) return;
      for (const h of b.hosts) {
        if (!vsIndex.exact.has(h)) vsIndex.exact.set(h, i);
        if (h === '*') vsIndex.any = Math.min(vsIndex.any, i);
        else if (h.startsWith('*.') && !vsIndex.suffix.has(h.slice(1))) vsIndex.suffix.set(h.slice(1), i);
      }
    });
    this.vsIndex = vsIndex;
  }

  warn(code: ConfigErrorCodeValue, r: Resource, path: string | null, message: string): void {
    const m = configMessage('warning', code, { origin: r.origin, resource: resourceName(r), path }, message);
    if (this.seenMessages.has(m.text)) return; // the same rule is compiled once per listener/port
    this.seenMessages.add(m.text);
    this.messages.push(m);
  }

  warnings(): readonly ConfigMessage[] {
    return this.messages;
  }

  /**
   * The DestinationRule for a service host: an exact host beats a wildcard (longest suffix first);
   * among equals, the proxy's namespace, then the service's, then load order
   * (client ns -> service ns -> root ns). Indexed (HostIndex): O(labels of the host), not O(rules).
   */
  destinationRuleFor(host: string, serviceNs: string | null): DestinationRule | null {
    // Exact (a wildcard service host equal to a wildcard DR host counts as exact, as before).
    const exact = this.drIndex.exact.get(host);
    if (exact !== undefined) return this.bestByNamespace(exact, serviceNs);
    // Suffixes of the host, longest first: the first that has rules decides (a longer suffix
    // always outranks a shorter one; within one suffix the pattern is the same string).
    for (let dot = host.indexOf('.', 1); dot > 0; dot = host.indexOf('.', dot + 1)) {
      const group = this.drIndex.suffix.get(host.slice(dot));
      if (group !== undefined) return this.bestByNamespace(group, serviceNs);
    }
    return this.drIndex.any.length > 0 ? this.bestByNamespace(this.drIndex.any, serviceNs) : null;
  }

  /** The proxy's namespace, then the service's, then load order (`group` is in load order). */
  private bestByNamespace(group: readonly DestinationRule[], serviceNs: string | null): DestinationRule {
    let best = group[0]!;
    let bestRank = -1;
    for (const dr of group) {
      const ns = dr.metadata.namespace;
      const rank = ns === this.opts.namespace ? 2 : ns === serviceNs ? 1 : 0;
      if (rank > bestRank) {
        best = dr;
        bestRank = rank;
        if (rank === 2) break;
      }
    }
    return best;
  }

  /**
   * The first mesh-bound VirtualService for a service host: the first (load order) naming the host
   * exactly, else the first (load order, not the most specific) whose hosts cover it.
   */
  meshVirtualServiceFor(host: string): BoundVirtualService | null {
    const idx = this.vsIndex;
    const exact = idx.exact.get(host);
    if (exact !== undefined) return this.virtualServices[exact]!;
    let first = idx.any;
    for (let dot = host.indexOf('.', 1); dot > 0; dot = host.indexOf('.', dot + 1)) {
      const i = idx.suffix.get(host.slice(dot));
      if (i !== undefined && i < first) first = i;
    }
    return first === Infinity ? null : this.virtualServices[first]!;
  }

  /**
   * Cluster name for a route destination, warning about what will fail at runtime: unknown host
   * (503 NC), undefined subset (503 NC), resolution NONE reached through a gateway (503 UH).
   * Port: the destination's, else the service's only port, else the listener port (Istio
   * `GetDestinationCluster`).
   */
  destinationCluster(dest: Destination, vs: VirtualService, path: string, listenerPort: number): string {
    const host = expandHost(dest.host, vs.metadata.namespace);
    const svc = this.servicesByHost.get(host);
    let port = listenerPort;
    if (dest.port !== undefined) port = dest.port.number;
    else if (svc !== undefined && svc.ports.length === 1) port = svc.ports[0]!.number;
    const subset = dest.subset ?? '';
    if (svc === undefined) {
      this.warn(ConfigErrorCode.UNKNOWN_HOST, vs, `${path}.host`,
        `destination host ${host} is not declared by any ServiceEntry: requests routed here get 503 NC`);
    } else {
      if (subset !== '') {
        const dr = this.destinationRuleFor(host, svc.entry.metadata.namespace);
        // A subset no DestinationRule defines at all is reported by the loader (cross-checks.ts), once;
        // here only the case the loader cannot see: defined, but not by a rule visible to this proxy.
        const definedSomewhere = this.resources.destinationRules.some((d) => (d.spec.subsets ?? []).some((s) => s?.name === subset) &&
          expandHost(d.spec.host, d.metadata.namespace) === host);
        if (definedSomewhere && (dr === null || !(dr.spec.subsets ?? []).some((s) => s.name === subset))) {
          this.warn(ConfigErrorCode.TRAP, vs, `${path}.subset`,
            `subset ${subset} of ${host} is defined, but by no DestinationRule visible to this proxy (exportTo, workloadSelector): requests routed here get 503 NC`);
        }
      }
      if (this.opts.role === 'gateway' && svc.resolution === 'NONE') {
        this.warn(ConfigErrorCode.TRAP, svc.entry, 'spec.resolution',
          `resolution NONE on a gateway: ${host} has no endpoints there (Istio builds an EDS cluster, not passthrough): requests get 503 UH; use DNS or STATIC`);
      }
    }
    return clusterName(port, subset, host);
  }
}
