// Name grammars Istio checks (pkg/config/labels, pkg/config/validation/agent): DNS-1123 labels,
// host names with a wildcard first label, Kubernetes label keys and values, IPs and CIDRs. Each
// returns the message Istio gives, or null when the name is valid, so callers only add a path.

import { isIP } from 'node:net';

// Istio's labels package allows upper case in DNS labels (unlike Kubernetes' own validation).
const DNS1123_LABEL = /^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$/;
const WILDCARD_LABEL = /^(?:\*|(?:\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)$/;
const QUALIFIED_NAME = /^(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
}

function preconditions(name: string): string | null {
  if (name.length > 255) return `domain name "${name}" too long (max 255)`;
  if (name.length === 0) return 'empty domain name not allowed';
  return null;
}

function dnsLabels(name: string, domain: string): string | null {
  const parts = domain.split('.');
  const tld = parts[parts.length - 1]!;
  if (/^[+-]?\d+$/.test(tld)) return `domain name "${name}" invalid (top level domain "${tld}" cannot be all-numeric)`;
  for (let i = 0; i < parts.length; i++) {
    if (i === parts.length - 1 && parts[i] === '') return null; // `istio.io.` is unambiguous, and allowed
    if (!isDns1123Label(parts[i]!)) return `domain name "${name}" invalid (label "${parts[i]}" invalid)`;
  }
  return null;
}

/** Istio ValidateFQDN. */
export function fqdnError(name: string): string | null {
  return preconditions(name) ?? dnsLabels(name, name);
}

/** Istio ValidateWildcardDomain: an FQDN whose first label may be `*`, `*foo` or `*-foo`. */
export function wildcardDomainError(name: string): string | null {
  const pre = preconditions(name);
  if (pre !== null) return pre;
  const dot = name.indexOf('.');
  const first = dot < 0 ? name : name.slice(0, dot);
  if (first.length > 63 || !WILDCARD_LABEL.test(first)) return `domain name "${name}" invalid (label "${first}" invalid)`;
  return dot < 0 ? null : dnsLabels(name, name.slice(dot + 1));
}

/** Istio ValidatePartialWildCard (a warning where Istio uses it): `*` only as a whole first label. */
export function partialWildcardError(host: string): string | null {
  return host.includes('*') && host.length !== 1 && !host.startsWith('*.') ? `partial wildcard "${host}" not allowed` : null;
}

/** Istio labels.Instance.Validate: Kubernetes label keys (`[prefix/]name`) and values. */
export function labelError(key: string, value: string): string | null {
  const slash = key.indexOf('/');
  const name = slash < 0 ? key : key.slice(slash + 1);
  const prefix = slash < 0 ? null : key.slice(0, slash);
  const keyOk = name.length <= 63 && QUALIFIED_NAME.test(name) && (prefix === null || (prefix.length <= 253 && DNS1123_SUBDOMAIN.test(prefix)));
  if (!keyOk) return `invalid tag key: "${key}"`;
  if (value !== '' && !(value.length <= 63 && QUALIFIED_NAME.test(value))) return `invalid tag value: "${value}"`;
  return null;
}

/** Istio ValidateIPAddress. */
export function ipError(s: string): string | null {
  return isIP(s) !== 0 ? null : `${s} is not a valid IP`;
}

/** Istio ValidateIPSubnet: an IP, or a CIDR block `a.b.c.d/n` / `2001:db8::/n`. */
export function subnetError(s: string): string | null {
  const slash = s.indexOf('/');
  if (slash < 0) return ipError(s);
  const ip = s.slice(0, slash);
  const bits = s.slice(slash + 1);
  const max = isIP(ip) === 4 ? 32 : isIP(ip) === 6 ? 128 : -1;
  return max > 0 && /^\d+$/.test(bits) && Number(bits) <= max ? null : `${s} is not a valid CIDR block`;
}
