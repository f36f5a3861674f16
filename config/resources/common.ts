// Field tables shared by several kinds (metadata, StringMatch, Destination, ...) and the small
// host-name helpers the per-kind and cross-resource rules use.

import { ConfigErrorCode } from '../errors';
import { isDns1123Label, labelError, wildcardDomainError } from './names';
import type { Destination, StringMatch } from './types';
import {
  field, ignore, int, num, obj, port, required, schema, str, strMap,
  type Locator, type ObjectSchema, type Reporter,
} from './schema';

/** Kubernetes bookkeeping that `kubectl get -o yaml` prints: accepted so such output loads, and dropped. */
const K8S_METADATA_NOISE = [
  'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds',
  'managedFields', 'ownerReferences', 'finalizers', 'generateName', 'selfLink',
];

export const METADATA: ObjectSchema = schema('ObjectMeta', [
  required('name', str()),
  field('namespace', str()),
  field('labels', strMap()),
  field('annotations', strMap()),
  ...K8S_METADATA_NOISE.map((n) => field(n, ignore())),
]);

// RE2 (what Envoy runs) has no lookaround and no backreferences; JS RegExp has both, so a regex
// that compiles here could still be rejected by Istio. Catch the common ones by name.
const NOT_RE2 = /\(\?<?[=!]|\\[1-9]|\\k</;

function checkRegex(regex: string, path: string, report: Reporter): void {
  if (NOT_RE2.test(regex)) {
    report.error(ConfigErrorCode.INVALID_FIELD, path, 'lookaround and backreferences are not RE2 syntax (Envoy/Istio regexes are RE2)');
    return;
  }
  try {
    new RegExp(regex);
  } catch (err) {
    // V8 repeats the pattern in its message ("Invalid regular expression: /(x/: Unterminated group");
    // the reason after the last colon is what the user needs.
    const reason = (err as Error).message.split(': ').pop();
    report.error(ConfigErrorCode.INVALID_FIELD, path, `invalid regex: ${reason}`);
  }
}

function stringMatchCheck(allowEmpty: boolean) {
  return (m: StringMatch, loc: Locator, report: Reporter): void => {
    const set = (['exact', 'prefix', 'regex'] as const).filter((k) => m[k] !== undefined);
    if (set.length > 1) {
      report.error(ConfigErrorCode.INVALID_FIELD, loc.at(m), `set exactly one of exact, prefix, regex (found ${set.join(' and ')})`);
    } else if (set.length === 0 && !allowEmpty) {
      report.error(ConfigErrorCode.REQUIRED, loc.at(m), 'set exactly one of exact, prefix, regex');
    }
    if (m.regex !== undefined) checkRegex(m.regex, loc.at(m, 'regex'), report);
  };
}

const STRING_MATCH_FIELDS = [field('exact', str()), field('prefix', str()), field('regex', str())];

/** uri, scheme, method, authority: exactly one of exact | prefix | regex. */
export const STRING_MATCH = schema('StringMatch', STRING_MATCH_FIELDS, stringMatchCheck(false));
/** Values of headers / queryParams / withoutHeaders: `{}` means "present". */
export const STRING_MATCH_OR_PRESENCE = schema('StringMatch', STRING_MATCH_FIELDS, stringMatchCheck(true));

export const PORT_SELECTOR = schema('PortSelector', [required('number', port())]);

/** Istio validateSubsetName: subsets are DNS-1123 labels (they become part of cluster names). */
export function subsetNameError(name: string): string | null {
  if (name === '') return 'subset name cannot be empty';
  return isDns1123Label(name) ? null : `subset name is invalid: ${name}`;
}

export const DESTINATION = schema('Destination', [
  required('host', str()),
  field('subset', str()),
  field('port', obj(PORT_SELECTOR)),
], (d: Destination, loc: Locator, r: Reporter) => {
  // Istio validateDestination.
  if (d.host === '*') r.error(ConfigErrorCode.INVALID_FIELD, loc.at(d, 'host'), `invalid destination host ${d.host}`);
  else if (d.host !== undefined) report(r, loc.at(d, 'host'), wildcardDomainError(d.host));
  if (d.subset !== undefined) report(r, loc.at(d, 'subset'), subsetNameError(d.subset));
});

/** Reports `message` as an invalid-field error at `path` when there is one. */
export function report(r: Reporter, path: string, message: string | null): void {
  if (message !== null) r.error(ConfigErrorCode.INVALID_FIELD, path, message);
}

/** Kubernetes label syntax for every key and value of a label map (Istio labels.Instance.Validate). */
export function checkLabels(labels: Readonly<Record<string, string>> | undefined, loc: Locator, r: Reporter): void {
  if (labels === undefined) return;
  for (const [k, v] of Object.entries(labels)) report(r, loc.at(labels, k), labelError(k, v));
}

export const PERCENT = schema('Percent', [field('value', num(0, 100))]);

/**
 * Istio's selector rules (ValidateAlphaWorkloadSelector / validateWorkloadSelector): no empty key,
 * no `*` in a key or value; an empty selector is allowed but selects every workload of the
 * namespace, which Istio warns about.
 */
function selectorCheck(labelsField: 'labels' | 'matchLabels', emptyWarning: string) {
  return (sel: Record<string, Readonly<Record<string, string>> | undefined>, loc: Locator, r: Reporter): void => {
    const labels = sel[labelsField];
    if (loc.wasRejected(sel, labelsField)) return;
    if (labels === undefined || Object.keys(labels).length === 0) {
      r.warn(ConfigErrorCode.TRAP, loc.at(sel), emptyWarning);
      return;
    }
    for (const [k, v] of Object.entries(labels)) {
      const at = loc.at(labels, k);
      if (k === '') r.error(ConfigErrorCode.INVALID_FIELD, at, `empty key is not supported in selector: "${k}=${v}"`);
      if (k.includes('*') || v.includes('*')) r.error(ConfigErrorCode.INVALID_FIELD, at, `wildcard is not supported in selector: "${k}=${v}"`);
    }
  };
}

/** ServiceEntry (and Sidecar) selector: networking.v1 WorkloadSelector, `labels`. */
export const WORKLOAD_SELECTOR = schema('WorkloadSelector', [field('labels', strMap())],
  selectorCheck('labels', 'workload selector specified without labels: it selects every workload in the namespace'));

/** DestinationRule (and the security kinds) selector: type.v1beta1 WorkloadSelector, `matchLabels`. */
export const MATCH_LABELS_SELECTOR = schema('WorkloadSelector', [field('matchLabels', strMap())],
  selectorCheck('matchLabels', 'workload selector specified without labels: it selects every workload in the namespace'));

/**
 * Istio validateExportTo: no duplicates (`.` is the resource's own namespace), `*` alone,
 * `~` (ServiceEntry only) alone; a DestinationRule with a workloadSelector is for its own
 * namespace only.
 */
export function checkExportTo(list: readonly (string | null)[] | undefined, namespace: string, holder: object, loc: Locator, r: Reporter,
  kind: { serviceEntry: boolean; drWithSelector: boolean }): void {
  if (list === undefined || list.length === 0) return;
  const E = ConfigErrorCode.INVALID_FIELD;
  const at = loc.at(holder, 'exportTo');
  const seen = new Set<string>();
  list.forEach((e, i) => {
    if (e === null) return;
    const key = e === '.' ? namespace : e;
    if (seen.has(key)) {
      r.error(E, `${at}[${i}]`, key !== e ? `duplicate entries in exportTo: . and current namespace ${namespace}` : `duplicate entries in exportTo for entry ${e}`);
      return;
    }
    if (e === '~' && !kind.serviceEntry) r.error(E, `${at}[${i}]`, `exportTo ~ (no one) is only allowed on a ServiceEntry`);
    else if (key !== '*' && key !== '~' && !isDns1123Label(key)) r.error(E, `${at}[${i}]`, `only . or * or namespace names allowed in exportTo, got "${e}"`);
    else seen.add(key);
  });
  if (kind.drWithSelector && seen.size > 0) {
    if (!seen.has(namespace)) r.error(E, at, 'destination rule with workload selector cannot have exportTo beyond current namespace');
    else if (seen.size > 1) r.error(E, at, 'destination rule with workload selector cannot have multiple entries in exportTo');
  }
  if (seen.has('*') && list.length > 1) r.error(E, at, 'cannot have both public (*) and non-public exportTo values for a resource');
  if (seen.has('~') && list.length > 1) r.error(E, at, 'cannot export service entry to no one (~) and someone');
}

export const WEIGHT = int(0, 100);

// ------------------------------------------------------------------ host names

/** Short names (`reviews`) mean `reviews.<ns>.svc.cluster.local`, as Istio resolves them. */
export function fqdn(host: string, namespace: string): string {
  return host.includes('.') || host.includes('*') ? host : `${host}.${namespace}.svc.cluster.local`;
}

/**
 * Whether every name `inner` can stand for is also covered by `outer` (Istio host.Name.SubsetOf):
 * `a.b.com` ⊆ `*.b.com` ⊆ `*.com` ⊆ `*`; a wildcard is never a subset of an exact name.
 */
export function hostSubsetOf(inner: string, outer: string): boolean {
  if (outer === '*' || inner === outer) return true;
  if (!outer.startsWith('*')) return false;
  const suffix = outer.slice(1); // `.b.com`
  const innerBase = inner.startsWith('*') ? inner.slice(1) : inner;
  return innerBase.endsWith(suffix) && innerBase.length > suffix.length;
}

/** Whether the exact name `host` is matched by `pattern` (exact or `*.suffix`). */
export function hostMatches(host: string, pattern: string): boolean {
  if (pattern === '*' || pattern === host) return true;
  return pattern.startsWith('*.') && host.endsWith(pattern.slice(1));
}
