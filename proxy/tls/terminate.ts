// Terminating downstream TLS on a gateway chain (SIMPLE / MUTUAL / ISTIO_MUTUAL / OPTIONAL_MUTUAL):
// a server-side TLSSocket over the accepted socket, the peer checks Envoy makes (CA chain, required
// certificate, the server's `subjectAltNames`), and Envoy's `listener.<name>.ssl.*` stats
// (E:docs/root/_include/ssl_stats.rst): `handshake` per successful handshake, `no_certificate` per
// successful handshake without a client certificate, `fail_verify_no_cert` when a required one is
// missing, `fail_verify_error` for a chain that does not verify, `fail_verify_san` for a SAN mismatch,
// `connection_error` for every other failure.
//
// Why a bare TLSSocket rather than tls.Server: the filter chain (and so the certificate and the
// verification mode) is chosen per connection after the ClientHello was inspected. The price is that
// Node's tls.Server-only check is ours to make: with requestCert, OpenSSL accepts any chain and Node
// reports the verdict on the native handle (transport/tls-internals.ts), which only tls.Server's own
// connection listener consults. Without it a certificate from any CA passes.

import type net from 'node:net';
import tls from 'node:tls';
import type { DownstreamTls } from '../../config/compile/snapshot';
import type { ListenerStats } from '../observe/stats';
import { peerVerifyError } from '../transport/tls-internals';

/** Why a downstream handshake failed: the Envoy-style reason for the log (`TLS_error:<code>`). */
export interface DownstreamTlsFailure {
  readonly reason: string;
}

export interface TerminatedCallbacks {
  /** The handshake and every peer check passed. `peerUriSan`: the client certificate's first URI SAN. */
  secure(socket: tls.TLSSocket, servername: string | null, peerUriSan: string | null): void;
  /** The handshake or a peer check failed; the socket is already destroyed. */
  failed(f: DownstreamTlsFailure): void;
}

/** One per terminated connection; handlers are methods bound once (no per-chunk closures). */
class Termination {
  private done = false;
  constructor(
    readonly secureSocket: tls.TLSSocket,
    readonly settings: DownstreamTls,
    readonly stats: ListenerStats,
    readonly cb: TerminatedCallbacks,
  ) {}

  onSecure(): void {
    const s = this.secureSocket;
    const t = this.settings;
    const requested = t.mode !== 'SIMPLE';
    const cert = requested ? s.getPeerCertificate() : null;
    const hasCert = cert !== null && cert.raw !== undefined;
    if (requested && hasCert) {
      const verifyError = peerVerifyError(s);
      if (verifyError !== null) {
        // Every mode, OPTIONAL_MUTUAL included: Envoy (require_client_certificate false) still
        // rejects a certificate that is presented and does not verify.
        this.stats.ssl_fail_verify_error.inc();
        this.fail('TLS_error:' + (verifyError.code ?? verifyError.message));
        return;
      }
      if (t.subjectAltNames.length > 0 && !sanMatches(cert.subjectaltname, t.subjectAltNames)) {
        this.stats.ssl_fail_verify_san.inc();
        this.fail('TLS_error:SAN_MISMATCH');
        return;
      }
    }
    if (!hasCert) this.stats.ssl_no_certificate.inc();
    this.stats.ssl_handshake.inc();
    this.done = true;
    const servername = (s as unknown as { servername?: string | false }).servername;
    this.cb.secure(s, typeof servername === 'string' && servername !== '' ? servername : null, hasCert ? firstUriSan(cert.subjectaltname) : null);
  }

  onError(err: NodeJS.ErrnoException): void {
    if (this.done) return; // after the handshake, errors belong to the HTTP / TCP layer
    const code = err.code ?? '';
    if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') this.stats.ssl_fail_verify_no_cert.inc();
    else if (code === 'ERR_SSL_CERTIFICATE_VERIFY_FAILED') this.stats.ssl_fail_verify_error.inc();
    else this.stats.ssl_connection_error.inc();
    this.fail('TLS_error:' + (code || err.message));
  }

  private fail(reason: string): void {
    if (this.done) return;
    this.done = true;
    this.secureSocket.destroy();
    this.cb.failed({ reason });
  }
}

/**
 * Terminate TLS on `socket`. Inspected bytes must have been put back with `socket.unshift(head)`
 * first: Node's TLSSocket feeds data already buffered on the JS socket to OpenSSL before reading
 * the handle (tested with a ClientHello consumed by inspection).
 */
export function terminateTls(
  socket: net.Socket, settings: DownstreamTls, secureContext: tls.SecureContext,
  stats: ListenerStats, cb: TerminatedCallbacks, offerH2 = false,
): void {
  const mutual = settings.mode !== 'SIMPLE';
  const secure = new tls.TLSSocket(socket, {
    isServer: true,
    secureContext,
    requestCert: mutual,
    // A missing certificate is refused in the handshake (OpenSSL's FAIL_IF_NO_PEER_CERT); the chain
    // itself is judged in onSecure (see the header comment).
    rejectUnauthorized: mutual && settings.mode !== 'OPTIONAL_MUTUAL',
    // No ALPNProtocols: Node aborts the handshake when a client offers no overlapping protocol (a
    // sidecar's ISTIO_MUTUAL offers `istio-peer-exchange, istio`), where Envoy carries on without
    // ALPN. HTTP chains (`offerH2`) choose in a callback instead: h2, else http/1.1 when offered.
    // Node cannot "choose nothing" from the callback (undefined is a fatal alert), so a client that
    // offers neither gets its own first choice echoed, and then speaks what it would have spoken
    // without ALPN; only `h2` makes this side speak HTTP/2.
    ALPNCallback: offerH2 ? chooseAlpn : undefined,
  });
  const t = new Termination(secure, settings, stats, cb);
  secure.once('secure', t.onSecure.bind(t));
  secure.on('error', t.onError.bind(t));
}

function chooseAlpn(hello: { protocols: string[] }): string | undefined {
  const p = hello.protocols;
  if (p.includes('h2')) return 'h2';
  if (p.includes('http/1.1')) return 'http/1.1';
  return p[0];
}

/** `subjectaltname` is Node's `DNS:a, URI:spiffe://..., IP Address:1.2.3.4` string. */
function sanEntries(subjectaltname: string | undefined): string[] {
  if (subjectaltname === undefined || subjectaltname === '') return [];
  return subjectaltname.split(', ');
}

function firstUriSan(subjectaltname: string | undefined): string | null {
  for (const e of sanEntries(subjectaltname)) if (e.startsWith('URI:')) return e.slice(4);
  return null;
}

/** Envoy's match_subject_alt_names with exact matchers: any SAN value equal to any wanted one. */
export function sanMatches(subjectaltname: string | undefined, wanted: readonly string[]): boolean {
  for (const e of sanEntries(subjectaltname)) {
    const colon = e.indexOf(':');
    const value = colon < 0 ? e : e.slice(colon + 1);
    if (wanted.includes(value)) return true;
  }
  return false;
}
