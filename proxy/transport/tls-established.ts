// node:http2 sets a session up on a TLS socket only once the socket says its handshake is done: it
// waits for 'secureConnect' while `secureConnecting` is true. Node clears that flag only on the
// client side; a server-side TLSSocket made with `new tls.TLSSocket(socket, { isServer: true })`
// (tls/terminate.ts, so the listener keeps the choice of context per filter chain) keeps it true
// after 'secure', and an HTTP/2 session on it would wait forever. The handshake is complete when
// this is called (after 'secure'), so the flag is cleared to say so. An undocumented field: kept
// here, with the other Node internals (proxy/transport/).

import type tls from 'node:tls';

export function markServerHandshakeDone(socket: tls.TLSSocket): void {
  (socket as tls.TLSSocket & { secureConnecting?: boolean }).secureConnecting = false;
}
