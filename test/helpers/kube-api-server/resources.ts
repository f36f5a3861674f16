// The resource types the test API server serves, as a real API server's discovery describes them
// (APIResource: name, singularName, namespaced, kind, verbs, shortNames). kubectl maps a kind or
// short name to a URL from these, so every type a test applies with kubectl must be listed here.

export interface ResourceType {
  /** '' for the core group (/api/v1). */
  readonly group: string;
  readonly version: string;
  /** Plural, lower case: the URL segment. */
  readonly name: string;
  readonly singularName: string;
  readonly kind: string;
  readonly namespaced: boolean;
  readonly shortNames: readonly string[];
}

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function type(group: string, version: string, kind: string, shortNames: string[] = [], namespaced = true): ResourceType {
  const singularName = kind.toLowerCase();
  const name = /[^aeiou]y$/.test(singularName) ? singularName.slice(0, -1) + 'ies' : singularName.endsWith('s') ? singularName + 'es' : singularName + 's';
  return { group, version, name, singularName, kind, namespaced, shortNames };
}

const ISTIO_KINDS: [string, string[]][] = [
  ['ServiceEntry', ['se']], ['Gateway', ['gw']], ['VirtualService', ['vs']], ['DestinationRule', ['dr']],
];

/** What a cluster with Istio installed serves: Istio networking in v1, v1beta1 and v1alpha3, as Istio's CRDs do. */
export function defaultResourceTypes(istioVersions: readonly string[] = ['v1', 'v1beta1', 'v1alpha3']): ResourceType[] {
  return [
    type('', 'v1', 'Namespace', ['ns'], false),
    type('', 'v1', 'Service', ['svc']),
    type('', 'v1', 'Pod', ['po']),
    type('', 'v1', 'ConfigMap', ['cm']),
    type('discovery.k8s.io', 'v1', 'EndpointSlice'),
    type('apps', 'v1', 'Deployment', ['deploy']),
    ...istioVersions.flatMap((v) => ISTIO_KINDS.map(([k, s]) => type('networking.istio.io', v, k, s))),
    type('security.istio.io', 'v1', 'AuthorizationPolicy', ['ap']),
    type('security.istio.io', 'v1', 'PeerAuthentication', ['pa']),
  ];
}

export function groupVersion(t: { readonly group: string; readonly version: string }): string {
  return t.group === '' ? t.version : `${t.group}/${t.version}`;
}

/** GET /api/v1 or /apis/GROUP/VERSION: an APIResourceList. */
export function apiResourceList(types: readonly ResourceType[], gv: string): object | null {
  const matching = types.filter((t) => groupVersion(t) === gv);
  if (matching.length === 0) return null;
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: gv,
    resources: matching.map((t) => ({
      name: t.name, singularName: t.singularName, namespaced: t.namespaced, kind: t.kind, verbs: VERBS,
      ...(t.shortNames.length > 0 ? { shortNames: t.shortNames } : {}),
      storageVersionHash: '',
    })),
  };
}

/** GET /apis: an APIGroupList; the first version of each group is its preferred one. */
export function apiGroupList(types: readonly ResourceType[]): object {
  const groups = new Map<string, string[]>();
  for (const t of types) {
    if (t.group === '') continue;
    const versions = groups.get(t.group) ?? [];
    if (!versions.includes(t.version)) versions.push(t.version);
    groups.set(t.group, versions);
  }
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: [...groups].map(([name, versions]) => apiGroup(name, versions)) };
}

export function apiGroup(name: string, versions: readonly string[]): object {
  const gvs = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
  return { kind: 'APIGroup', apiVersion: 'v1', name, versions: gvs, preferredVersion: gvs[0] };
}
