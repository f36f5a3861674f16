// VirtualService `corsPolicy` as Envoy's CORS filter applies it (source/extensions/filters/http/cors):
// a request with an `Origin` is a CORS request. A preflight (OPTIONS with
// `Access-Control-Request-Method`) from an allowed origin is answered by the proxy: 200 with
// `access-control-allow-origin` (the request's origin), `-allow-methods`, `-allow-headers`,
// `-max-age` and `-allow-credentials: true` when set, details `cors_response`. A preflight from an
// origin not allowed is forwarded upstream (`unmatchedPreflights: FORWARD`, Istio's default) or
// answered 200 without CORS headers (`IGNORE`). Any other request from an allowed origin is
// forwarded and its response gets `access-control-allow-origin`, `-allow-credentials` and
// `-expose-headers`. An origin matcher that accepts `*` allows every origin (Envoy tests `*` too).

import type { CorsPolicy } from '../../config/compile/snapshot';
import { stringMatches } from '../../config/compile/string-match';

export function originAllowed(p: CorsPolicy, origin: string): boolean {
  for (const m of p.allowOrigins) if (stringMatches(m, '*') || stringMatches(m, origin)) return true;
  return false;
}

/** The headers of the local preflight reply, [name, value, ...]. */
export function preflightHeaders(p: CorsPolicy, origin: string): string[] {
  const out = ['access-control-allow-origin', origin];
  if (p.allowCredentials) out.push('access-control-allow-credentials', 'true');
  if (p.allowMethods !== null) out.push('access-control-allow-methods', p.allowMethods);
  if (p.allowHeaders !== null) out.push('access-control-allow-headers', p.allowHeaders);
  if (p.maxAge !== null) out.push('access-control-max-age', p.maxAge);
  return out;
}

/** Headers added to the upstream's response to an allowed CORS request, [name, value, ...]. */
export function actualResponseHeaders(p: CorsPolicy, origin: string): string[] {
  const out = ['access-control-allow-origin', origin];
  if (p.allowCredentials) out.push('access-control-allow-credentials', 'true');
  if (p.exposeHeaders !== null) out.push('access-control-expose-headers', p.exposeHeaders);
  return out;
}

export type CorsDecision =
  | { readonly kind: 'none' }
  /** answer the preflight locally with these headers (empty: IGNORE) */
  | { readonly kind: 'preflight'; readonly headers: readonly string[] }
  /** forward, adding these to the response */
  | { readonly kind: 'actual'; readonly headers: readonly string[] };

const NONE: CorsDecision = { kind: 'none' };

/** `origin` / `requestMethod`: the request's `Origin` and `Access-Control-Request-Method`. */
export function corsDecision(p: CorsPolicy, method: string, origin: string | undefined, requestMethod: string | undefined): CorsDecision {
  if (origin === undefined || origin === '') return NONE;
  const allowed = originAllowed(p, origin);
  if (method === 'OPTIONS' && requestMethod !== undefined && requestMethod !== '') {
    if (allowed) return { kind: 'preflight', headers: preflightHeaders(p, origin) };
    return p.unmatchedPreflights === 'IGNORE' ? { kind: 'preflight', headers: [] } : NONE;
  }
  return allowed ? { kind: 'actual', headers: actualResponseHeaders(p, origin) } : NONE;
}
