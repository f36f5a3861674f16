// Field tables shared by several kinds (metadata, StringMatch, Destination, ...) and the small
// host-name helpers the per-kind and cross-resource rules use.

import { ConfigErrorCode } from '../errors';
import type { StringMatch } from './types';
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

export const DESTINATION = schema('Destination', [
  required('host', str()),
  field('subset', str()),
  field('port', obj(PORT_SELECTOR)),
]);

export const PERCENT = schema('Percent', [field('value', num(0, 100))]);

export const WORKLOAD_SELECTOR = schema('WorkloadSelector', [required('labels', strMap())]);

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
