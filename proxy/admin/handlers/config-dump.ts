// GET /config_dump: what the proxy is running, in Envoy's envelope `{"configs":[...]}` with one
// entry per Envoy config-dump type, filled with sluice's compiled snapshot
// (listeners, clusters, routes), the TLS files in use, and the Istio resources the snapshot was
// compiled from. Field names inside the entries are sluice's (camelCase), not Envoy protos: the
// envelope lets people find things where they look for them in Envoy, without pretending to be
// protobuf-exact.
//
// Key material never appears: the snapshot holds file *paths* only, and as a second line of
// defence any string that looks like a PEM private key is replaced before it is printed.

import type { Cluster, Listener, RouteConfig, Snapshot } from '../../../config/compile/snapshot';
import { JSON_TYPE, text, type Endpoint } from '../endpoint';

export const CONFIG_DUMP_TYPES = {
  bootstrap: 'type.googleapis.com/envoy.admin.v3.BootstrapConfigDump',
  clusters: 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump',
  listeners: 'type.googleapis.com/envoy.admin.v3.ListenersConfigDump',
  routes: 'type.googleapis.com/envoy.admin.v3.RoutesConfigDump',
  secrets: 'type.googleapis.com/envoy.admin.v3.SecretsConfigDump',
  istio: 'type.googleapis.com/sluice.admin.v1.IstioResourcesConfigDump',
} as const;

const PEM_PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;
export const REDACTED = '[redacted]';

/**
 * JSON.stringify replacer for snapshot objects: Maps become their keys (their values are dumped
 * elsewhere: listeners/clusters explicitly, route domains under their virtual host), Sets become
 * arrays, compiled RegExps their source.
 */
function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'string') return PEM_PRIVATE_KEY.test(value) ? REDACTED : value;
  if (value instanceof Map) return [...value.keys()];
  if (value instanceof Set) return [...value];
  if (value instanceof RegExp) return value.source;
  if (typeof value === 'bigint') return value.toString();
  return value;
}

interface SecretRef {
  name: string;
  certificateChain: string | null;
  privateKey: string | null;
  trustedCa: string | null;
  usedBy: string[];
}

/** TLS files the snapshot refers to, keyed by cert (or CA) path: paths only, never contents. */
function secretsOf(snap: Snapshot): SecretRef[] {
  const byName = new Map<string, SecretRef>();
  const add = (cert: string | null, key: string | null, ca: string | null, user: string): void => {
    const name = cert ?? ca;
    if (name === null) return;
    let s = byName.get(name);
    if (s === undefined) {
      s = { name, certificateChain: cert, privateKey: key, trustedCa: ca, usedBy: [] };
      byName.set(name, s);
    }
    if (!s.usedBy.includes(user)) s.usedBy.push(user);
  };
  for (const l of snap.listeners.values()) {
    for (const c of l.chains) if (c.tls !== null) add(c.tls.certFile, c.tls.keyFile, c.tls.caFile, 'listener ' + l.name + ' chain ' + c.name);
  }
  for (const c of snap.clusters.values()) {
    if (c.tls !== null) add(c.tls.certFile, c.tls.keyFile, c.tls.caFile, 'cluster ' + c.name);
  }
  return [...byName.values()];
}

function routeConfigsOf(snap: Snapshot): RouteConfig[] {
  const seen = new Map<string, RouteConfig>();
  for (const l of snap.listeners.values()) {
    for (const c of l.chains) if (c.filter.kind === 'http' && !seen.has(c.filter.routeConfig.name)) seen.set(c.filter.routeConfig.name, c.filter.routeConfig);
  }
  return [...seen.values()];
}

export function buildConfigDump(snap: Snapshot | null, serverInfo: Record<string, unknown>, now: Date): { configs: Record<string, unknown>[] } {
  const lastUpdated = now.toISOString();
  const bootstrap = {
    '@type': CONFIG_DUMP_TYPES.bootstrap,
    bootstrap: {
      node: serverInfo['node'] ?? null,
      role: snap?.role ?? null,
      namespace: snap?.namespace ?? null,
      labels: snap?.labels ?? null,
      outboundPolicy: snap?.outboundPolicy ?? null,
    },
    last_updated: lastUpdated,
  };
  if (snap === null) return { configs: [bootstrap] };
  const version = snap.version;
  return {
    configs: [
      bootstrap,
      {
        '@type': CONFIG_DUMP_TYPES.clusters,
        version_info: version,
        static_clusters: [],
        dynamic_active_clusters: [...snap.clusters.values()].map((cluster: Cluster) => ({ version_info: version, cluster, last_updated: lastUpdated })),
      },
      {
        '@type': CONFIG_DUMP_TYPES.listeners,
        version_info: version,
        dynamic_listeners: [...snap.listeners.values()].map((listener: Listener) => ({
          name: listener.name,
          active_state: { version_info: version, listener, last_updated: lastUpdated },
        })),
        catch_all: snap.catchAll,
      },
      {
        '@type': CONFIG_DUMP_TYPES.routes,
        dynamic_route_configs: routeConfigsOf(snap).map((route_config) => ({ version_info: version, route_config, last_updated: lastUpdated })),
      },
      {
        '@type': CONFIG_DUMP_TYPES.secrets,
        dynamic_active_secrets: secretsOf(snap).map((s) => ({ name: s.name, version_info: version, last_updated: lastUpdated, secret: s })),
      },
      {
        '@type': CONFIG_DUMP_TYPES.istio,
        version_info: version,
        service_entries: snap.resources.serviceEntries,
        gateways: snap.resources.gateways,
        virtual_services: snap.resources.virtualServices,
        destination_rules: snap.resources.destinationRules,
        warnings: snap.warnings,
      },
    ],
  };
}

/** Serialise with the replacer (Maps, Sets, RegExps, key redaction). */
export function stringifyConfigDump(dump: unknown): string {
  return JSON.stringify(dump, replacer, 2) + '\n';
}

export const configDumpEndpoints: readonly Endpoint[] = [
  {
    path: '/config_dump',
    mutates: false,
    help: 'dump current config (?resource=dynamic_active_clusters|dynamic_listeners|dynamic_route_configs|dynamic_active_secrets|...)',
    handle(env, query) {
      const dump = buildConfigDump(env.ctx.snapshot(), env.ctx.serverInfo(), new Date());
      const resource = query.get('resource');
      if (resource === null || resource === '') return { status: 200, contentType: JSON_TYPE, body: stringifyConfigDump(dump) };
      // Envoy's `?resource=` returns the items of that field from whichever dump has it.
      for (const c of dump.configs) {
        const items = c[resource];
        if (Array.isArray(items)) return { status: 200, contentType: JSON_TYPE, body: stringifyConfigDump({ configs: items }) };
      }
      return text(`no resource named "${resource}" in the config dump\n`, 404);
    },
  },
];
