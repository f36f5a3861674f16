// The two things sluice reads from a TLSSocket's native handle (TLSWrap), which Node exposes only
// as private `_handle`; kept here so the rest of the proxy sees plain functions.
// - peerVerifyError: with requestCert, OpenSSL accepts any chain and Node reports the verdict through
//   the handle's verifyError(), which only tls.Server's own connection listener consults
//   (lib/_tls_wrap.js onServerSocketSecure). A TLSSocket made per connection (tls/terminate.ts) must
//   ask itself. Node 12-24.
// - wireOf: the TCP handle under the TLS layer (TLSWrap keeps it as `_parent`, Node 12-24), whose
//   byte counts are the bytes on the wire, not the plaintext. upstream/connect.ts counts those.

import type tls from 'node:tls';

/** Byte counts as net.Socket and the TCP handle under TLS both have them. */
export interface ByteCounters {
  readonly bytesRead: number;
  readonly bytesWritten: number;
}

type TlsHandle = { verifyError?(): (Error & { code?: string }) | null; _parent?: ByteCounters };
type WithHandle = { _handle?: TlsHandle | null };

/** The peer certificate's verification error on a TLSSocket (null: verified, or no handle left). */
export function peerVerifyError(s: tls.TLSSocket): (Error & { code?: string }) | null {
  const handle = (s as unknown as WithHandle)._handle;
  return handle === null || handle === undefined || handle.verifyError === undefined ? null : handle.verifyError();
}

/** The TCP handle's byte counters under a TLSSocket, null where Node has no such handle. */
export function wireOf(secure: tls.TLSSocket): ByteCounters | null {
  return (secure as unknown as WithHandle)._handle?._parent ?? null;
}
