// Header handling for the forwarding path. Hop-by-hop headers (RFC 9110 §7.6.1) and every header
// named in `Connection` are dropped in both directions, as Envoy does; framing headers
// (Content-Length, Transfer-Encoding) are written by whoever frames the body, never copied.
// The parser tagged each header with an `H` id, so nothing here lower-cases a name unless the route
// has header operations (whose name sets are built once per snapshot object, rule 10).

import type { HeaderOps } from '../../config/compile/snapshot';
import { H, hasToken, type RequestHead, type ResponseHead } from './h1-head';

/** ids that never cross the proxy as they came */
const DROP = new Uint8Array(16);
DROP[H.CONTENT_LENGTH] = 1;
DROP[H.TRANSFER_ENCODING] = 1;
DROP[H.CONNECTION] = 1;
DROP[H.KEEP_ALIVE] = 1;
DROP[H.EXPECT] = 1;
DROP[H.HOP] = 1;
// Envoy sets these on each hop (x-envoy-attempt-count on the upstream request, the service time on
// the response): a copy from the previous hop would make two (sidecar -> gateway -> upstream).
DROP[H.X_ENVOY_ATTEMPT_COUNT] = 1;
DROP[H.X_ENVOY_UPSTREAM_SERVICE_TIME] = 1;

/** Names listed in Connection (other than close / keep-alive), lower-cased; null when none. */
export function connectionDrops(connection: string | null): Set<string> | null {
  if (connection === null) return null;
  const lc = connection.toLowerCase();
  if (!lc.includes(',') && (lc.trim() === 'close' || lc.trim() === 'keep-alive')) return null;
  let set: Set<string> | null = null;
  for (const tok of lc.split(',')) {
    const t = tok.trim();
    if (t !== '' && t !== 'close' && t !== 'keep-alive') (set ??= new Set()).add(t);
  }
  return set;
}

interface CompiledOps {
  /** lower-cased names removed from what came in (remove ∪ set) */
  readonly drop: Set<string>;
  /** [name, value, ...] appended (set, then add) */
  readonly append: string[];
}
const compiled = new WeakMap<HeaderOps, CompiledOps>();
const SAFE = /^[^\r\n\0]*$/;

function compile(ops: HeaderOps): CompiledOps {
  let c = compiled.get(ops);
  if (c !== undefined) return c;
  const drop = new Set<string>();
  const append: string[] = [];
  for (const n of ops.remove) drop.add(n.toLowerCase());
  for (const [k, v] of ops.set) {
    drop.add(k.toLowerCase());
    // A value with CR/LF would write a second header (or a second message): never emit it.
    if (SAFE.test(k) && SAFE.test(v)) append.push(k, v);
  }
  for (const [k, v] of ops.add) if (SAFE.test(k) && SAFE.test(v)) append.push(k, v);
  c = { drop, append };
  compiled.set(ops, c);
  return c;
}

/**
 * The upstream request's header lines ("name: value\r\n"...), from the downstream head, without
 * hop-by-hop and framing headers and without the ids in `skip` (headers the caller replaces).
 */
export function upstreamHeaderLines(head: RequestHead, ops: HeaderOps | null, skip1: number, skip2: number): string {
  const raw = head.raw;
  const ids = head.ids;
  const conn = head.connection === null ? null : connectionDrops(head.connection);
  const c = ops === null ? null : compile(ops);
  let out = '';
  for (let i = 0, k = 0; i < raw.length; i += 2, k++) {
    const id = ids[k]!;
    if (DROP[id] === 1 || id === skip1 || id === skip2) continue;
    const name = raw[i]!;
    if (conn !== null || c !== null) {
      const lower = name.toLowerCase();
      if ((conn !== null && conn.has(lower)) || (c !== null && c.drop.has(lower))) continue;
    }
    out += name + ': ' + raw[i + 1]! + '\r\n';
  }
  if (c !== null) for (let i = 0; i < c.append.length; i += 2) out += c.append[i]! + ': ' + c.append[i + 1]! + '\r\n';
  return out;
}

/** Response headers for the downstream as [name, value, ...], without hop-by-hop and framing headers. */
export function downstreamResponseHeaders(head: ResponseHead, ops: HeaderOps | null): string[] {
  const raw = head.raw;
  const ids = head.ids;
  const conn = head.connection === null ? null : connectionDrops(head.connection);
  const c = ops === null ? null : compile(ops);
  const out: string[] = [];
  for (let i = 0, k = 0; i < raw.length; i += 2, k++) {
    if (DROP[ids[k]!] === 1) continue;
    const name = raw[i]!;
    if (conn !== null || c !== null) {
      const lower = name.toLowerCase();
      if ((conn !== null && conn.has(lower)) || (c !== null && c.drop.has(lower))) continue;
    }
    out.push(name, raw[i + 1]!);
  }
  if (c !== null) for (let i = 0; i < c.append.length; i++) out.push(c.append[i]!);
  return out;
}

export { hasToken };
