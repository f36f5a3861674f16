// Header handling for the forwarding path. Hop-by-hop headers (RFC 9110 §7.6.1) and every header
// named in `Connection` are dropped in both directions, as Envoy does; undici would also refuse
// several of them (transfer-encoding, keep-alive, upgrade, expect; PERFORMANCE.md §4).

import type { HeaderOps } from '../../config/compile/snapshot';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization', 'expect']);

function connectionTokens(value: string | undefined): Set<string> | null {
  if (value === undefined || value === '') return null;
  const set = new Set<string>();
  for (const tok of value.split(',')) {
    const t = tok.trim().toLowerCase();
    if (t !== '' && t !== 'close' && t !== 'keep-alive') set.add(t);
  }
  return set.size === 0 ? null : set;
}

/**
 * Request headers for the upstream, as a flat [name, value, ...] array (undici's cheapest form),
 * from the downstream raw headers. Returns the names seen that the caller cares about.
 */
export function upstreamRequestHeaders(raw: readonly string[], connection: string | undefined, ops: HeaderOps | null): string[] {
  const drop = connectionTokens(connection);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || (drop !== null && drop.has(lower))) continue;
    out.push(name, raw[i + 1]!);
  }
  return ops === null ? out : applyHeaderOps(out, ops);
}

/** Response headers for the downstream, from undici's lower-cased header object. */
export function downstreamResponseHeaders(headers: Record<string, string | string[]>, ops: HeaderOps | null): Record<string, string | string[]> {
  const c = headers['connection'];
  const drop = connectionTokens(Array.isArray(c) ? c.join(',') : c);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || (drop !== null && drop.has(name))) continue;
    out[name] = headers[name]!;
  }
  if (ops !== null) {
    for (const name of ops.remove) delete out[name.toLowerCase()];
    for (const [k, v] of ops.set) out[k.toLowerCase()] = v;
    for (const [k, v] of ops.add) {
      const key = k.toLowerCase();
      const prev = out[key];
      out[key] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
  }
  return out;
}

function applyHeaderOps(flat: string[], ops: HeaderOps): string[] {
  const remove = new Set([...ops.remove, ...ops.set.map(([k]) => k)].map((k) => k.toLowerCase()));
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2) if (!remove.has(flat[i]!.toLowerCase())) out.push(flat[i]!, flat[i + 1]!);
  for (const [k, v] of ops.set) out.push(k, v);
  for (const [k, v] of ops.add) out.push(k, v);
  return out;
}
