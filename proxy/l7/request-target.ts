// The four forms of an HTTP/1.1 request-target (RFC 9112 §3.2) and what each means for routing:
//
// - origin-form `/path?q`: routed by the Host header.
// - absolute-form `http://authority/path`: a server MUST accept it (§3.2.2), and then the target's
//   authority is the request's host and any Host header is ignored (RFC 9112 §3.2.2, §7.2). So it is
//   routed by that authority and forwarded in origin form with `host:` set to it, as nginx and
//   Envoy do. Routing by Host while forwarding the absolute URI would let a client reach the
//   Host's route (an egress allow-list entry) while the next hop goes to the target's authority.
// - authority-form `host:port`: only for CONNECT (§3.2.3).
// - asterisk-form `*`: only for OPTIONS (§3.2.4).
//
// Any other shape is a bad request (400, as nginx and HAProxy answer). So is the method `PRI`:
// it only exists as the HTTP/2 connection preface (RFC 9113 §3.4), which the listeners detect
// before the HTTP/1.1 parser sees the connection; on an HTTP/1.1 connection it is a client that
// speaks the wrong protocol, and forwarding it would hand an h2 preface look-alike to the upstream.

export const TargetForm = { ORIGIN: 0, ABSOLUTE: 1, AUTHORITY: 2, ASTERISK: 3 } as const;
export type TargetFormValue = (typeof TargetForm)[keyof typeof TargetForm];

export interface ParsedTarget {
  readonly form: TargetFormValue;
  /** the authority the request is for: the target's (absolute/authority form) or null (use Host) */
  readonly authority: string | null;
  /** origin-form path + query to route on and forward ('*' for asterisk-form, '' for CONNECT) */
  readonly path: string;
}

const ORIGIN_ASTERISK: ParsedTarget = { form: TargetForm.ASTERISK, authority: null, path: '*' };

/** The target's meaning for `method`, or null when the pair is malformed (answer 400). */
export function parseRequestTarget(method: string, target: string): ParsedTarget | null {
  if (method === 'PRI') return null;
  const c = target.charCodeAt(0);
  if (method === 'CONNECT') return authorityForm(target);
  if (c === 0x2f /* / */) return { form: TargetForm.ORIGIN, authority: null, path: target };
  if (target === '*') return method === 'OPTIONS' ? ORIGIN_ASTERISK : null;
  return absoluteForm(target);
}

/** `http://host[:port]/path?q` or `https://...` (the schemes a proxy forwards; others are 400). */
function absoluteForm(target: string): ParsedTarget | null {
  const lower = target.slice(0, 8).toLowerCase();
  const start = lower.startsWith('http://') ? 7 : lower.startsWith('https://') ? 8 : -1;
  if (start < 0) return null;
  let end = start;
  while (end < target.length) {
    const ch = target.charCodeAt(end);
    if (ch === 0x2f || ch === 0x3f || ch === 0x23) break; // '/', '?', '#'
    end++;
  }
  const authority = target.slice(start, end);
  // userinfo ("user@host") is deprecated in http(s) URIs and a classic way to make two parsers
  // disagree on the host (RFC 9110 §4.2.4): refused.
  if (authority === '' || authority.includes('@') || !validAuthority(authority)) return null;
  let path = target.slice(end);
  if (path.includes('#')) return null; // a fragment is never part of a request-target
  if (path === '') path = '/';
  else if (path.charCodeAt(0) === 0x3f) path = '/' + path;
  return { form: TargetForm.ABSOLUTE, authority, path };
}

/** CONNECT's `host:port` (a port is required, RFC 9110 §9.3.6). */
function authorityForm(target: string): ParsedTarget | null {
  const i = target.lastIndexOf(':');
  if (i <= 0 || i === target.length - 1 || !validAuthority(target)) return null;
  const port = Number(target.slice(i + 1));
  if (!Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { form: TargetForm.AUTHORITY, authority: target, path: '' };
}

/** host (reg-name, IPv4, or [IPv6]) with an optional numeric port: the bytes a Host header may hold. */
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]{1,5})?$/;
function validAuthority(a: string): boolean {
  return AUTHORITY.test(a);
}

/** `host:port` split (IPv6 brackets removed); port null when absent. */
export function splitAuthority(authority: string): { host: string; port: number | null } {
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    const host = authority.slice(1, end);
    const rest = authority.slice(end + 1);
    return { host, port: rest.startsWith(':') ? Number(rest.slice(1)) : null };
  }
  const i = authority.lastIndexOf(':');
  return i < 0 ? { host: authority, port: null } : { host: authority.slice(0, i), port: Number(authority.slice(i + 1)) };
}
