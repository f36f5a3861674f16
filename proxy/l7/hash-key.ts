// The key a DestinationRule `consistentHash` hashes on for an HTTP request: a header, a cookie or a
// query parameter (useSourceIp is the load balancer's own). Only computed when the cluster's policy
// asks for it, so the common request pays nothing.

import type { LbPolicy } from '../../config/compile/snapshot';
import type { RequestView } from '../../config/compile/lookup';

/** The value to hash, or null (Envoy then picks as if no hash policy matched: any host). */
export function hashValueFor(lb: LbPolicy, req: RequestView): string | null {
  if (lb.kind !== 'CONSISTENT_HASH') return null;
  switch (lb.key) {
    case 'header':
      return req.header(lb.name.toLowerCase()) ?? null;
    case 'cookie':
      return cookieValue(req.header('cookie'), lb.name);
    case 'queryParameter':
      return queryValue(req.path, lb.name);
    default:
      return null;
  }
}

function cookieValue(header: string | undefined, name: string): string | null {
  if (header === undefined) return null;
  for (const part of header.split(/[;,]/)) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

function queryValue(path: string, name: string): string | null {
  const q = path.indexOf('?');
  if (q < 0) return null;
  return new URLSearchParams(path.slice(q + 1)).get(name);
}
