// Where an accepted bare handle goes, on a gateway port or captured by the sidecar alike:
// - the TCP fast path at once when its listener looks at no bytes and routes plain TCP to a
//   plain-TCP cluster (l4/handle-proxy.ts);
// - when the listener's chains match on SNI (TLS passthrough, the egress gateway's main job), the
//   ClientHello is read on the handle (inspect-handle.ts) and a plain-TCP chain keeps the fast path,
//   the hello being the relay's first write;
// - anything else (TLS termination, HTTP, protocol sniffing, a TLS-originating cluster, no route, a
//   failed inspection) becomes a net.Socket and goes through dispatch.ts as before, with the
//   inspection already done handed over rather than repeated.

import type { ProxyContext } from '../context';
import type { TcpHandle } from '../transport/tcp-handle';
import { proxyInspectedHandle, proxyTcpHandle } from '../l4/handle-proxy';
import { trackedSocketFor } from '../transport/accept-handles';
import type { TrackedDownstream } from './connection-stats';
import { dispatchConnection, dispatchInspected, inspectOptionsFor, type AcceptedConnection } from './dispatch';
import { inspectHandle } from './inspect-handle';

/** `conn` without its socket: the handle becomes one only if the connection needs it. */
export function dispatchHandle(ctx: ProxyContext, client: TcpHandle, conn: Omit<AcceptedConnection, 'socket'>, tracked: TrackedDownstream): void {
  if (proxyTcpHandle(ctx, client, conn.listener, conn.l4, tracked)) return;
  const opts = inspectOptionsFor(conn.listener);
  // Protocol sniffing (HTTP or not) stays with the socket inspector: its HTTP side needs sockets anyway.
  if (opts === null || opts.wantHttp) {
    dispatchConnection(ctx, { ...conn, socket: trackedSocketFor(client, tracked) });
    return;
  }
  inspectHandle(client, opts, (err, first) => {
    if (err === null && first !== null && proxyInspectedHandle(ctx, client, conn.listener, conn.l4, tracked, first)) return;
    dispatchInspected(ctx, { ...conn, socket: trackedSocketFor(client, tracked) }, err, first);
  });
}
