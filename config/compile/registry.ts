// What this proxy can see, indexed once per compile: visible ServiceEntries as services (one per
// host), DestinationRules by host, VirtualServices with their gateways resolved and hosts
// expanded, and the warning collector. Every other compile step reads from here.

import type {
  DestinationRule, Destination, Resources, ServiceEntry, ServicePort, VirtualService, Location, Resolution, Resource,
} from '../resources/types';
import type { ConfigMessage, OutboundPolicy, Role } from './snapshot';
import { configMessage, ConfigErrorCode, type ConfigErrorCodeValue } from '../errors';
import { clusterName, expandHost, MESH_GATEWAY, resolveGatewayName } from './names';
import { hostCovers, labelsSubsetOf } from './hosts';

export interface CompileOptions {
  readonly role: Role;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly outboundPolicy: OutboundPolicy;
  readonly certsDir: string;
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
  /** Resolved `ns/name` or `mesh`; absent in the YAML = [mesh] (ENVOY-ISTIO.md §3.2). */
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
 * exportTo (ENVOY-ISTIO.md §3.5): absent/empty or `*` = everywhere; `.` = the resource's own
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

export function resourceName(r: Resource): string {
  return `${r.kind}/${r.metadata.name}`;
}

export class Registry {
  readonly opts: CompileOptions;
  readonly resources: Resources;
  readonly services: readonly Service[];
  readonly servicesByHost: ReadonlyMap<string, Service>;
  readonly virtualServices: readonly BoundVirtualService[];
  private readonly destinationRules: readonly { readonly host: string; readonly dr: DestinationRule }[];
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
    this.services = services;
    this.servicesByHost = byHost;

    this.destinationRules = resources.destinationRules
      .filter((dr) => visibleTo(dr.spec.exportTo, dr.metadata.namespace, proxyNs))
      // A DR with workloadSelector applies only to the workloads it selects.
      .filter((dr) => dr.spec.workloadSelector === undefined || labelsSubsetOf(dr.spec.workloadSelector.labels, opts.labels))
      .map((dr) => ({ host: expandHost(dr.spec.host, dr.metadata.namespace), dr }));

    this.virtualServices = resources.virtualServices
      .filter((vs) => visibleTo(vs.spec.exportTo, vs.metadata.namespace, proxyNs))
      .map((vs) => ({
        vs,
        gateways: (vs.spec.gateways === undefined || vs.spec.gateways.length === 0 ? [MESH_GATEWAY] : vs.spec.gateways)
          .map((g) => resolveGatewayName(g, vs.metadata.namespace)),
        hosts: (vs.spec.hosts ?? []).map((h) => expandHost(h, vs.metadata.namespace)),
      }));
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
   * among equals, the proxy's namespace, then the service's, then load order (ENVOY-ISTIO.md §3.8:
   * client ns -> service ns -> root ns).
   */
  destinationRuleFor(host: string, serviceNs: string | null): DestinationRule | null {
    let best: DestinationRule | null = null;
    let bestScore = -1;
    for (const { host: drHost, dr } of this.destinationRules) {
      if (!hostCovers(drHost, host)) continue;
      const specificity = drHost === host ? 1_000_000 : drHost.length * 10;
      const nsRank = dr.metadata.namespace === this.opts.namespace ? 2 : dr.metadata.namespace === serviceNs ? 1 : 0;
      const score = specificity + nsRank;
      if (score > bestScore) {
        best = dr;
        bestScore = score;
      }
    }
    return best;
  }

  /** The first mesh-bound VirtualService for a service host: exact host first, then a wildcard. */
  meshVirtualServiceFor(host: string): BoundVirtualService | null {
    let wildcard: BoundVirtualService | null = null;
    for (const b of this.virtualServices) {
      if (!b.gateways.includes(MESH_GATEWAY)) continue;
      if (b.hosts.includes(host)) return b;
      if (wildcard === null && b.hosts.some((h) => hostCovers(h, host))) wildcard = b;
    }
    return wildcard;
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
        if (dr === null || !(dr.spec.subsets ?? []).some((s) => s.name === subset)) {
          this.warn(ConfigErrorCode.TRAP, vs, `${path}.subset`,
            `subset ${subset} of ${host} is not defined by any visible DestinationRule: requests routed here get 503 NC`);
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
