// TLS origination settings for a cluster (DestinationRule `tls`: SIMPLE / MUTUAL / ISTIO_MUTUAL),
// built once per cluster generation: one SecureContext (PERFORMANCE.md §5.1: passing `ca` per
// connection costs 0.3-0.8 ms of CPU each), the peer-identity check, and the session cache.
//
// Certificate rotation: istio-agent rewrites the workload certificate (ISTIO_MUTUAL) long before it
// expires, and a MUTUAL client certificate may be rotated by cert-manager. The context's files are
// re-stat()ed at most once a second (on a connect, never on a timer) and the context is rebuilt when
// they changed, so new connections present the new certificate; open ones keep theirs. Cached
// sessions are dropped then (a resumed session would carry the old identity). A half-written
// rotation (key and certificate not matching yet) keeps the previous context until the next check.

import fs from 'node:fs';
import tls from 'node:tls';
import type { Cluster, UpstreamTls } from '../../config/compile/snapshot';
import type { TlsOrigination } from '../upstream/connect';
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

/** Prebuild the SecureContext once per cluster generation (PERFORMANCE.md §5.1); see the header on rotation. */
export function buildTlsOrigination(c: Cluster, now: number = Date.now()): TlsOrigination & { contextAt(now: number): tls.SecureContext } {
  return new Origination(c.tls!, now);
}
