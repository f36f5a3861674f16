// Which version of each Istio networking kind the API server serves: v1 where it exists (Istio >=
// 1.22), else v1beta1, else v1alpha3, asked per kind of /apis/networking.istio.io/VERSION as
// kubectl's discovery does. A cluster without Istio's CRDs serves none: sluice then reads only
// Services and EndpointSlices (and says so).

import { KubeApiError, type KubeClient } from './client';

export const ISTIO_GROUP = 'networking.istio.io';
export const ISTIO_VERSIONS = ['v1', 'v1beta1', 'v1alpha3'] as const;

/** The four kinds and their resource (URL) names. */
export const ISTIO_KINDS = [
  { kind: 'ServiceEntry', resource: 'serviceentries' },
  { kind: 'Gateway', resource: 'gateways' },
  { kind: 'VirtualService', resource: 'virtualservices' },
  { kind: 'DestinationRule', resource: 'destinationrules' },
] as const;

export interface ServedKind {
  readonly kind: string;
  readonly resource: string;
  readonly version: string;
}

/** The preferred served version of each Istio kind; kinds not served are left out. */
export async function istioKinds(client: KubeClient): Promise<ServedKind[]> {
  const served = new Map<string, Set<string>>();
  for (const version of ISTIO_VERSIONS) {
    let list: { resources?: { name?: string }[] };
    try {
      list = await client.get(`/apis/${ISTIO_GROUP}/${version}`) as typeof list;
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 404) continue;
      throw e;
    }
    served.set(version, new Set((list.resources ?? []).map((r) => r.name ?? '')));
  }
  const out: ServedKind[] = [];
  for (const k of ISTIO_KINDS) {
    const version = ISTIO_VERSIONS.find((v) => served.get(v)?.has(k.resource));
    if (version !== undefined) out.push({ ...k, version });
  }
  return out;
}
