// compile(resources, options) -> Snapshot: the whole control plane in one pure function
// (DESIGN.md "Data flow"; STYLE.md rule 3). No I/O, no timers, no clock: the same input gives a
// deep-equal, deep-frozen output, and `version` is a hash of the inputs, so a reload that
// changes nothing can be recognised and skipped.

import { createHash } from 'node:crypto';
import type { Resources } from '../resources/types';
import type { Cluster, Listener, Snapshot } from './snapshot';
import { BLACKHOLE_CLUSTER } from './snapshot';
import { Registry, type CompileOptions } from './registry';
import { buildClusters } from './clusters';
import { buildSidecarListeners } from './sidecar';
import { buildGatewayListeners } from './gateway';
import { catchAllHttpHost, catchAllTcpCluster } from './route-config';
import { deepFreeze, frozenMap } from './freeze';
import { indexListeners } from './lookup';

export type { CompileOptions } from './registry';

/** JSON with object keys sorted and undefined dropped: equal inputs -> equal text. */
function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return v === undefined ? 'null' : JSON.stringify(v);
  if (Array.isArray(v)) return '[' + v.map(canonicalJson).join(',') + ']';
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
  return '{' + keys.map((k) => JSON.stringify(k) + ':' + canonicalJson(o[k])).join(',') + '}';
}

export function snapshotVersion(resources: Resources, opts: CompileOptions): string {
  const input = canonicalJson({
    resources, role: opts.role, namespace: opts.namespace, labels: opts.labels,
    outboundPolicy: opts.outboundPolicy, certsDir: opts.certsDir,
  });
  return createHash('sha256').update(input).digest('hex');
}

export function compile(resources: Resources, opts: CompileOptions): Snapshot {
  const reg = new Registry(resources, opts);
  const clusters = buildClusters(reg);
  const sidecar = opts.role === 'sidecar';
  // outboundTrafficPolicy "does not apply to gateways" (ENVOY-ISTIO.md §3.4): a gateway routes
  // only what its VirtualServices say, so its catch-all never forwards.
  const policy = sidecar ? opts.outboundPolicy : 'REGISTRY_ONLY';
  const catchAll = { tcpCluster: sidecar ? catchAllTcpCluster(policy) : BLACKHOLE_CLUSTER, httpHost: catchAllHttpHost(policy) };
  let listeners: Map<string, Listener>;
  if (sidecar) listeners = buildSidecarListeners(reg, catchAll.httpHost, catchAll.tcpCluster);
  else {
    const extra = new Map<string, Cluster>();
    listeners = buildGatewayListeners(reg, extra);
    for (const [k, c] of extra) clusters.set(k, c);
  }
  const snapshot: Snapshot = {
    role: opts.role,
    namespace: opts.namespace,
    labels: { ...opts.labels },
    version: snapshotVersion(resources, opts),
    outboundPolicy: opts.outboundPolicy,
    listeners: frozenMap(listeners),
    catchAll,
    clusters: frozenMap(clusters),
    warnings: reg.warnings(),
    resources,
  };
  deepFreeze(snapshot);
  indexListeners(snapshot); // build the lookup index now, not on the first connection
  return snapshot;
}
