// x-forwarded-client-cert as Istio's sidecar inbound sets it: Envoy's forward_client_cert_details
// APPEND_FORWARD with set_current_client_cert_details {subject, dns, uri}. On a connection whose
// client presented a verified certificate, the request goes to the app with the client's header
// (if any) plus one element for this hop:
//   By=<this proxy's URI SAN>;Hash=<hex SHA-256 of the client certificate>;Subject="<subject>";URI=<client URI SAN>;DNS=<each DNS SAN>
// (Envoy's order; `,` separates elements). Without a client certificate the header is dropped (the
// inbound route removes it), so an app can trust it came from this proxy.

import { createHash } from 'node:crypto';
import type tls from 'node:tls';
import type { RequestHead } from './h1-head';

function sans(subjectaltname: string | undefined, kind: 'URI:' | 'DNS:'): string[] {
  if (subjectaltname === undefined || subjectaltname === '') return [];
  return subjectaltname.split(', ').filter((e) => e.startsWith(kind)).map((e) => e.slice(kind.length));
}

/** RFC 2253 order (most specific first), as Envoy prints a subject: `CN=a,O=b`. */
function subjectText(subject: Record<string, string | string[]> | undefined): string {
  if (subject === undefined) return '';
  return Object.entries(subject).reverse().map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`).join(',');
}

/** This hop's element, or null when the client presented no certificate. Once per connection. */
export function xfccElement(secure: tls.TLSSocket): string | null {
  const peer = secure.getPeerCertificate();
  if (peer === null || peer.raw === undefined) return null;
  const own = secure.getCertificate() as tls.PeerCertificate | null;
  let out = '';
  const by = own === null ? [] : sans(own.subjectaltname, 'URI:');
  if (by.length > 0) out += 'By=' + by[0] + ';';
  out += 'Hash=' + createHash('sha256').update(peer.raw).digest('hex');
  out += ';Subject="' + subjectText(peer.subject as unknown as Record<string, string | string[]> | undefined).replace(/"/g, '\\"') + '"';
  for (const u of sans(peer.subjectaltname, 'URI:')) out += ';URI=' + u;
  for (const d of sans(peer.subjectaltname, 'DNS:')) out += ';DNS=' + d;
  return out;
}

/** The header value to send: the client's elements (if it sent any), then this hop's. */
export function appendedXfcc(head: RequestHead, element: string): string {
  const raw = head.raw;
  let prior = '';
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 24 && raw[i]!.toLowerCase() === 'x-forwarded-client-cert') prior += (prior === '' ? '' : ',') + raw[i + 1]!;
  }
  return prior === '' ? element : prior + ',' + element;
}
