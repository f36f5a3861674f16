// GET /clusters: Envoy's text lines (`source/server/admin/clusters_handler.cc`)
// and `?format=json` in the shape of `envoy.admin.v3.Clusters`.

import type { CircuitBreakers } from '../../../config/compile/snapshot';
import type { ClusterStatus, HostStatus } from '../context';
import { json, text, wantsJson, type Endpoint } from '../endpoint';

/**
 * Istio only sets the default-priority thresholds; the high-priority ones keep Envoy's built-in
 * defaults (1024 connections / pending / requests, 3 retries), which /clusters prints too.
 */
export const ENVOY_HIGH_PRIORITY_THRESHOLDS: CircuitBreakers = { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 };

/** Host counters then gauges, alphabetical, as Envoy lists them. */
const HOST_COUNTERS = ['cx_connect_fail', 'cx_total', 'rq_error', 'rq_success', 'rq_timeout', 'rq_total'] as const;
const HOST_GAUGES = ['cx_active', 'rq_active'] as const;
const HOST_STATS_TEXT_ORDER = ['cx_active', 'cx_connect_fail', 'cx_total', 'rq_active', 'rq_error', 'rq_success', 'rq_timeout', 'rq_total'] as const;

function locality(host: HostStatus): { region: string; zone: string; sub_zone: string } {
  const [region = '', zone = '', subZone = ''] = host.locality === '' ? [] : host.locality.split('/');
  return { region, zone, sub_zone: subZone };
}

/**
 * sluice has no active health checking and no EDS health: an unhealthy host is one the outlier
 * detection ejected, which Envoy shows as `/failed_outlier_check`.
 */
function healthFlags(host: HostStatus): string {
  return host.healthy ? 'healthy' : '/failed_outlier_check';
}

function thresholdLines(name: string, priority: string, cb: CircuitBreakers): string {
  const p = name + '::' + priority + '::';
  return (
    p + 'max_connections::' + cb.maxConnections + '\n' +
    p + 'max_pending_requests::' + cb.maxPendingRequests + '\n' +
    p + 'max_requests::' + cb.maxRequests + '\n' +
    p + 'max_retries::' + cb.maxRetries + '\n'
  );
}

export function renderClustersText(clusters: readonly ClusterStatus[]): string {
  let out = '';
  for (const c of clusters) {
    out += thresholdLines(c.name, 'default_priority', c.circuitBreakers);
    out += thresholdLines(c.name, 'high_priority', ENVOY_HIGH_PRIORITY_THRESHOLDS);
    out += c.name + '::added_via_api::' + c.addedViaApi + '\n';
    for (const h of c.hosts) {
      const p = c.name + '::' + hostAddress(h) + '::';
      for (const s of HOST_STATS_TEXT_ORDER) out += p + s + '::' + h.stats[s] + '\n';
      const loc = locality(h);
      out +=
        p + 'hostname::' + h.hostname + '\n' +
        p + 'health_flags::' + healthFlags(h) + '\n' +
        p + 'weight::' + h.weight + '\n' +
        p + 'region::' + loc.region + '\n' +
        p + 'zone::' + loc.zone + '\n' +
        p + 'sub_zone::' + loc.sub_zone + '\n' +
        p + 'canary::false\n' +
        p + 'priority::' + (h.priority ?? 0) + '\n' +
        p + 'success_rate::-1\n' +
        p + 'local_origin_success_rate::-1\n';
    }
  }
  return out;
}

/** `1.2.3.4:80`, `[::1]:80` */
function hostAddress(h: HostStatus): string {
  return h.address.includes(':') ? '[' + h.address + ']:' + h.port : h.address + ':' + h.port;
}

function thresholdsJson(cb: CircuitBreakers, priority: 'DEFAULT' | 'HIGH'): Record<string, unknown> {
  // proto3 JSON omits enum zero values: DEFAULT priority has no "priority" key.
  const t: Record<string, unknown> = priority === 'HIGH' ? { priority: 'HIGH' } : {};
  t['max_connections'] = cb.maxConnections;
  t['max_pending_requests'] = cb.maxPendingRequests;
  t['max_requests'] = cb.maxRequests;
  t['max_retries'] = cb.maxRetries;
  return t;
}

/** `envoy.admin.v3.Clusters`: uint64 stat values are strings in proto3 JSON; gauges carry a type. */
export function clustersJson(clusters: readonly ClusterStatus[]): unknown {
  return {
    cluster_statuses: clusters.map((c) => ({
      name: c.name,
      observability_name: c.name,
      added_via_api: c.addedViaApi,
      circuit_breakers: { thresholds: [thresholdsJson(c.circuitBreakers, 'DEFAULT'), thresholdsJson(ENVOY_HIGH_PRIORITY_THRESHOLDS, 'HIGH')] },
      host_statuses: c.hosts.map((h) => ({
        address: { socket_address: { address: h.address, port_value: h.port } },
        stats: [
          ...HOST_COUNTERS.map((s) => ({ name: s, value: String(h.stats[s]) })),
          ...HOST_GAUGES.map((s) => ({ name: s, type: 'GAUGE', value: String(h.stats[s]) })),
        ],
        health_status: h.healthy ? { eds_health_status: 'HEALTHY' } : { failed_outlier_check: true, eds_health_status: 'HEALTHY' },
        weight: h.weight,
        hostname: h.hostname,
        locality: locality(h),
        // proto3 JSON omits zero: priority 0 has no key.
        ...(h.priority !== undefined && h.priority > 0 ? { priority: h.priority } : {}),
      })),
    })),
  };
}

export const clustersEndpoints: readonly Endpoint[] = [
  {
    path: '/clusters',
    mutates: false,
    help: 'upstream cluster status (?format=json)',
    handle(env, query) {
      const clusters = env.ctx.clusters();
      return wantsJson(query) ? json(clustersJson(clusters)) : text(renderClustersText(clusters));
    },
  },
];
