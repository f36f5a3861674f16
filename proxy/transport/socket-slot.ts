// Per-socket state for the socket listeners that every connection shares (no closures per
// connection: an idle proxied connection's memory is a target). An EventEmitter calls a listener with
// the socket as `this`, and the listener finds its state in the socket's slot.
//
// One slot object under one symbol, added once, rather than a property per module: every property
// added to a net.Socket after construction gives it a new hidden class, and Node's stream and event
// code that all sockets run (emit, Readable.on, read, flow...) turns polymorphic and then megamorphic
// with each extra shape. With one slot a socket has two shapes, before and after.

import type net from 'node:net';
import type { Relay } from '../l4/relay';
import type { TcpSession } from '../l4/tcp-proxy';
import type { UpstreamConnection } from '../upstream/connect';
import type { TrackedDownstream } from '../listener/connection-stats';

export class SocketSlot {
  /** listener accounting of an accepted connection (listener/connection-stats.ts) */
  tracked: TrackedDownstream | null = null;
  /** the TCP proxy session while its upstream connects (l4/tcp-proxy.ts) */
  session: TcpSession | null = null;
  /** an upstream connection's bookkeeping (upstream/connect.ts) */
  connection: UpstreamConnection | null = null;
  /** the relay joining this socket to its peer (l4/relay.ts) */
  relay: Relay | null = null;
}

const kSlot = Symbol('sluice.slot');
type SlottedSocket = net.Socket & { [kSlot]?: SocketSlot };

/** The socket's slot, created on first use. */
export function slotOf(socket: net.Socket): SocketSlot {
  const s = socket as SlottedSocket;
  let slot = s[kSlot];
  if (slot === undefined) {
    slot = new SocketSlot();
    s[kSlot] = slot;
  }
  return slot;
}
