// TLS origination settings for a cluster (DestinationRule `tls`: SIMPLE / MUTUAL / ISTIO_MUTUAL),
// built once per cluster generation: one SecureContext (PERFORMANCE.md §5.1: passing `ca` per
// connection costs 0.3-0.8 ms of CPU each), the peer-identity check, and the session cache.

import fs from 'node:fs';
import tls from 'node:tls';
import type { Cluster } from '../../config/compile/snapshot';
import type { TlsOrigination } from '../upstream/connect';

function readOptional(file: string | null): Buffer | undefined {
  return file === null ? undefined : fs.readFileSync(file);
}

/** Prebuild the SecureContext once per cluster generation (PERFORMANCE.md §5.1). */
export function buildTlsOrigination(c: Cluster): TlsOrigination {
  const t = c.tls!;
  const ca = readOptional(t.caFile);
  const secureContext = tls.createSecureContext({
    ca, // undefined = Node's bundled roots (Istio: "else OS CAs")
    cert: readOptional(t.certFile),
    key: readOptional(t.keyFile),
  });
  let check: TlsOrigination['checkServerIdentity'];
  if (t.subjectAltNames.length > 0) {
    const wanted = new Set(t.subjectAltNames);
    check = (_host, cert) => {
      const sans = (cert.subjectaltname ?? '').split(/,\s*/).map((s) => s.replace(/^(DNS|URI|IP Address):/, ''));
      if (sans.some((s) => wanted.has(s))) return undefined;
      const err = new Error(`certificate SANs [${sans.join(', ')}] match none of ${[...wanted].join(', ')}`) as NodeJS.ErrnoException;
      err.code = 'ERR_SLUICE_SAN_MISMATCH';
      return err;
    };
  } else if (t.mode === 'ISTIO_MUTUAL') {
    // The peer is a mesh workload: the CA (root-cert.pem) vouches for it; its SAN is a SPIFFE URI,
    // not the SNI, so Node's hostname check does not apply.
    check = () => undefined;
  }
  return {
    secureContext, rejectUnauthorized: !t.insecureSkipVerify, alpn: t.alpn, checkServerIdentity: check, sessions: new Map(),
    awaitPeerVerdict: t.mode !== 'SIMPLE',
  };
}
