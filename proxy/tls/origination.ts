// TLS origination settings for a cluster (DestinationRule `tls`: SIMPLE / MUTUAL / ISTIO_MUTUAL),
// built once per cluster generation: one SecureContext (passing `ca` per
// connection costs 0.3-0.8 ms of CPU each), the peer-identity check, and the session cache.
//
// Certificate rotation: istio-agent rewrites the workload certificate (ISTIO_MUTUAL) long before it
// expires, and a MUTUAL client certificate may be rotated by cert-manager. The context's files are
// re-stat()ed at most once a second (on a connect, never on a timer) and the context is rebuilt when
// they changed, so new connections present the new certificate; open ones keep theirs. Cached
// sessions are dropped then (a resumed session would carry the old identity). A half-written
// rotation (key and certificate not matching yet) keeps the previous context until the next check.
//
// Cached TLS 1.3 sessions are kept without the server's certificate (resumableSession below).

import fs from 'node:fs';
import tls from 'node:tls';
import type { Cluster, UpstreamTls } from '../../config/compile/snapshot';
import { fileStamp, RECHECK_MS } from './file-stamp';

function readOptional(file: string | null): Buffer | undefined {
  return file === null ? undefined : fs.readFileSync(file);
}

function buildContext(t: UpstreamTls): tls.SecureContext {
  return tls.createSecureContext({
    ca: readOptional(t.caFile), // undefined = Node's bundled roots (Istio: "else OS CAs")
    cert: readOptional(t.certFile),
    key: readOptional(t.keyFile),
  });
}

/** What upstream/connect.ts needs to originate TLS to a cluster's hosts. */
export interface TlsOrigination {
  readonly secureContext: tls.SecureContext;
  readonly rejectUnauthorized: boolean;
  readonly alpn: readonly string[];
  /** Verifies the peer certificate beyond the CA chain (SAN list); undefined = Node's hostname check. */
  readonly checkServerIdentity: ((host: string, cert: tls.PeerCertificate) => Error | undefined) | undefined;
  readonly sessions: Map<string, Buffer>;
  /**
   * The upstream verifies a client certificate (DR MUTUAL / ISTIO_MUTUAL). In TLS 1.3 the client's
   * handshake completes before the server has judged the client's certificate; its verdict (a session
   * ticket, or an alert such as certificate_required) arrives one flight later. With this set, a new
   * TLS 1.3 connection is handed over only once that verdict is in, so a refused certificate is a
   * connect failure (503 UF + UPSTREAM_TRANSPORT_FAILURE_REASON, retried) and not a reset mid-request.
   */
  readonly awaitPeerVerdict: boolean;
}

class Origination implements TlsOrigination {
  readonly rejectUnauthorized: boolean;
  readonly alpn: readonly string[];
  readonly checkServerIdentity: TlsOrigination['checkServerIdentity'];
  readonly sessions = new Map<string, Buffer>();
  readonly awaitPeerVerdict: boolean;
  private context: tls.SecureContext;
  private stamp: string;
  private checkedAt: number;

  constructor(private readonly t: UpstreamTls, now: number) {
    this.stamp = this.filesStamp();
    this.context = buildContext(t); // unreadable files at build time throw, as before
    this.checkedAt = now;
    this.rejectUnauthorized = !t.insecureSkipVerify;
    this.alpn = t.alpn;
    this.checkServerIdentity = identityCheck(t);
    this.awaitPeerVerdict = t.mode !== 'SIMPLE';
  }

  get secureContext(): tls.SecureContext {
    return this.contextAt(Date.now());
  }

  /** The context for a connection made at `now` (ms), rebuilt if the files changed since. */
  contextAt(now: number): tls.SecureContext {
    if (now - this.checkedAt < RECHECK_MS) return this.context;
    this.checkedAt = now;
    const stamp = this.filesStamp();
    if (stamp === this.stamp) return this.context;
    try {
      this.context = buildContext(this.t);
      this.stamp = stamp;
      this.sessions.clear();
    } catch {
      // Mid-rotation (files missing or not matching yet): keep the last good context, retry later.
    }
    return this.context;
  }

  private filesStamp(): string {
    return fileStamp([this.t.caFile, this.t.certFile, this.t.keyFile]);
  }
}

function identityCheck(t: UpstreamTls): TlsOrigination['checkServerIdentity'] {
  if (t.subjectAltNames.length > 0) {
    const wanted = new Set(t.subjectAltNames);
    return (_host, cert) => {
      const sans = (cert.subjectaltname ?? '').split(/,\s*/).map((s) => s.replace(/^(DNS|URI|IP Address):/, ''));
      if (sans.some((s) => wanted.has(s))) return undefined;
      const err = new Error(`certificate SANs [${sans.join(', ')}] match none of ${[...wanted].join(', ')}`) as NodeJS.ErrnoException;
      err.code = 'ERR_SLUICE_SAN_MISMATCH';
      return err;
    };
  }
  // The peer is a mesh workload: the CA (root-cert.pem) vouches for it; its SAN is a SPIFFE URI,
  // not the SNI, so Node's hostname check does not apply.
  if (t.mode === 'ISTIO_MUTUAL') return () => undefined;
  return undefined;
}

/** Prebuild the SecureContext once per cluster generation; see the header on rotation. */
export function buildTlsOrigination(c: Cluster, now: number = Date.now()): TlsOrigination & { contextAt(now: number): tls.SecureContext } {
  return new Origination(c.tls!, now);
}

// ---- session cache entries

const DER_SEQUENCE = 0x30;
const DER_INTEGER = 0x02;
/** SSL_SESSION's `peer` field: [3] EXPLICIT Certificate OPTIONAL (OpenSSL ssl/ssl_asn1.c) */
const DER_PEER = 0xa3;
const TLS1_3_VERSION = 0x0304;

/** Content start and end of the DER element whose tag is at `at`; null when it does not fit in `end`. */
function derElement(b: Buffer, at: number, end: number): { start: number; end: number } | null {
  if (at + 2 > end) return null;
  let length = b[at + 1]!;
  let start = at + 2;
  if (length >= 0x80) {
    const n = length & 0x7f;
    if (n === 0 || n > 3 || start + n > end) return null;
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + b[start + i]!;
    start += n;
  }
  return start + length <= end ? { start, end: start + length } : null;
}

function derHeader(tag: number, length: number): Buffer {
  if (length < 0x80) return Buffer.from([tag, length]);
  if (length < 0x100) return Buffer.from([tag, 0x81, length]);
  if (length < 0x10000) return Buffer.from([tag, 0x82, length >> 8, length & 0xff]);
  return Buffer.from([tag, 0x83, length >> 16, (length >> 8) & 0xff, length & 0xff]);
}

/**
 * The session to cache for resumption: a TLS 1.3 session (Node's serialized SSL_SESSION) without the
 * server's certificate; anything else as it is. Every new connection decodes the cached session, and
 * on Node 20 (OpenSSL 3.0) decoding the certificate's public key is ~90% of it (~0.25 ms of the
 * ~1.3 ms a resumed connection costs here). TLS 1.3 resumption authenticates the server with the PSK
 * and sends no certificate; Node accepts a resumed TLS 1.3 connection without a peer certificate
 * (VerifyPeerCertificate) and checks the server's identity only on full handshakes, and sluice reads
 * no peer certificate from upstream connections. A TLS 1.2 session keeps it: Node rejects a resumed
 * TLS 1.2 connection without one. A blob that does not parse as expected is kept as it is.
 */
export function resumableSession(session: Buffer): Buffer {
  if (session[0] !== DER_SEQUENCE) return session;
  const outer = derElement(session, 0, session.length);
  if (outer === null || outer.end !== session.length) return session;
  const kept: Buffer[] = [];
  let keptBytes = 0;
  let peer = false;
  let tls13 = false;
  let field = 0;
  for (let at = outer.start; at < outer.end; field++) {
    const e = derElement(session, at, outer.end);
    if (e === null) return session;
    const tag = session[at]!;
    // Field 1 is the protocol version: INTEGER 0x0304 for TLS 1.3.
    if (field === 1) tls13 = tag === DER_INTEGER && e.end - e.start === 2 && session.readUInt16BE(e.start) === TLS1_3_VERSION;
    if (tag === DER_PEER) peer = true;
    else {
      kept.push(session.subarray(at, e.end));
      keptBytes += e.end - at;
    }
    at = e.end;
  }
  if (!tls13 || !peer) return session;
  return Buffer.concat([derHeader(DER_SEQUENCE, keptBytes), ...kept]);
}
