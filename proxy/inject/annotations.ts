// What a pod's annotations ask of its sidecar, read as Istio's injector reads them
// (istio/istio manifests/charts/istio-control/istio-discovery/files/injection-template.yaml):
//   traffic.sidecar.istio.io/includeOutboundIPRanges  -> sluice iptables --include-outbound-cidrs  (default '*')
//   traffic.sidecar.istio.io/excludeOutboundIPRanges  -> --exclude-outbound-cidrs
//   traffic.sidecar.istio.io/excludeOutboundPorts     -> --exclude-outbound-ports
//   traffic.sidecar.istio.io/includeInboundPorts      -> --inbound-ports                 (default '*')
//   traffic.sidecar.istio.io/excludeInboundPorts      -> --exclude-inbound-ports, always with 15090,15021,15020
//   sidecar.istio.io/proxyCPU, proxyMemory, proxyCPULimit, proxyMemoryLimit -> the sidecar's resources
//   sidecar.istio.io/inject: "false"                 -> not injected
// Annotations that would change capture in a way `sluice iptables` cannot do (TPROXY, port
// includes, interface excludes) are refused, never dropped: a pod that silently captured less than
// its owner asked could reach out around the egress gateway.

import { parseIptablesArgs } from '../iptables/options';

const TRAFFIC = 'traffic.sidecar.istio.io/';
const SIDECAR = 'sidecar.istio.io/';

/** Ports Istio never captures inbound: Prometheus (15090), health (15021), agent (15020). */
const ALWAYS_EXCLUDED_INBOUND = [15090, 15021, 15020];

/** Istio's defaults for the proxy container (values.global.proxy.resources). */
export const DEFAULT_RESOURCES = { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '2000m', memory: '1024Mi' } };

const FLAG_OF: Readonly<Record<string, string>> = {
  includeOutboundIPRanges: '--include-outbound-cidrs',
  excludeOutboundIPRanges: '--exclude-outbound-cidrs',
  excludeOutboundPorts: '--exclude-outbound-ports',
  includeInboundPorts: '--inbound-ports',
  excludeInboundPorts: '--exclude-inbound-ports',
};

/** Read, but not by sluice: refused with this reason. */
const UNSUPPORTED: Readonly<Record<string, string>> = {
  [TRAFFIC + 'includeOutboundPorts']: 'sluice iptables has no outbound port include list (istio-iptables -q)',
  [TRAFFIC + 'excludeInterfaces']: 'sluice iptables has no interface exclusion (istio-iptables -c)',
  [TRAFFIC + 'kubevirtInterfaces']: 'sluice iptables has no kubevirt interface capture (istio-iptables -k)',
};

export interface PodSidecarSettings {
  /** `sluice iptables` arguments for the init container */
  readonly iptablesArgs: string[];
  readonly resources: { requests: Record<string, string>; limits: Record<string, string> };
}

/** Input `sluice inject` cannot inject: invalid YAML, an annotation it cannot honour, a pod without containers (exit 1). */
export class InjectError extends Error {
  readonly code = 'INJ_ERR_INPUT';
}

/** Whether the pod opted out (`sidecar.istio.io/inject: "false"`). */
export function injectionDisabled(annotations: Readonly<Record<string, unknown>>, labels: Readonly<Record<string, unknown>>): boolean {
  // Istio takes the label (newer) or the annotation; "false" in either opts out.
  return String(labels[SIDECAR + 'inject'] ?? annotations[SIDECAR + 'inject'] ?? 'true').toLowerCase() === 'false';
}

/** The init container's args and the sidecar's resources for these annotations; throws InjectError listing every problem (`where` names the object). */
export function sidecarSettings(annotations: Readonly<Record<string, unknown>>, where: string): PodSidecarSettings {
  const problems: string[] = [];
  const get = (key: string): string | undefined => (annotations[key] === undefined ? undefined : String(annotations[key]));
  for (const [key, why] of Object.entries(UNSUPPORTED)) if (get(key) !== undefined) problems.push(`${key}: ${why}; remove it or capture with istio-init`);
  const mode = get(SIDECAR + 'interceptionMode');
  if (mode !== undefined && mode !== 'REDIRECT') problems.push(`${SIDECAR}interceptionMode: "${mode}": sluice captures with REDIRECT only`);

  const args = ['iptables', '--proxy-uid', '1337', '--outbound-port', '15001', '--inbound-port', '15006'];
  for (const [name, flag] of Object.entries(FLAG_OF)) {
    let value = get(TRAFFIC + name);
    if (name === 'excludeInboundPorts') {
      const own = (value ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
      value = [...new Set([...ALWAYS_EXCLUDED_INBOUND.map(String), ...own])].join(',');
    }
    if (value === undefined) continue;
    args.push(`${flag}=${value.replace(/\s+/g, '')}`);
  }
  try {
    parseIptablesArgs(args.slice(1), {});
  } catch (e) {
    // The same checks the init container would make at pod start, made now, with the annotation named.
    for (const line of (e as Error).message.split('\n').slice(1)) {
      const flag = /^\s*(--[a-z-]+)/.exec(line)?.[1];
      const annotation = Object.entries(FLAG_OF).find(([, f]) => f === flag)?.[0];
      problems.push(annotation === undefined ? line.trim() : `${TRAFFIC}${annotation}: ${line.trim().replace(/^--[a-z-]+: /, '')}`);
    }
  }

  const resources = { requests: { ...DEFAULT_RESOURCES.requests }, limits: { ...DEFAULT_RESOURCES.limits } };
  const quantity = (key: string, target: Record<string, string>, field: string): void => {
    const v = get(SIDECAR + key);
    if (v === undefined) return;
    if (!/^\d+(\.\d+)?(m|[KMGTPE]i?|e\d+)?$/.test(v)) problems.push(`${SIDECAR}${key}: "${v}" is not a Kubernetes quantity (e.g. 100m, 128Mi)`);
    else target[field] = v;
  };
  quantity('proxyCPU', resources.requests, 'cpu');
  quantity('proxyMemory', resources.requests, 'memory');
  quantity('proxyCPULimit', resources.limits, 'cpu');
  quantity('proxyMemoryLimit', resources.limits, 'memory');

  if (problems.length > 0) throw new InjectError(`${where}: ${problems.join('; ')}`);
  return { iptablesArgs: args, resources };
}
