// Per-connection state for the socket listeners and handle callbacks that every connection shares
// (no closures per connection: an idle proxied connection's memory is a target). An EventEmitter
// calls a listener with the socket as `this`, libuv's callbacks a handle's `onread` with the handle
// as `this`, and the function finds its state in the object's slot.
//
// One slot object under one symbol, added once, rather than a property per module: every property
// added to a net.Socket (or a handle) after construction gives it a new hidden class, and Node's
// stream and event code that all sockets run (emit, Readable.on, read, flow...) turns polymorphic and
// then megamorphic with each extra shape. With one slot an object has two shapes, before and after.
//
// Each field is declared, with its type, by the module that owns it, by declaration merging:
//   declare module '../transport/socket-slot' { interface SocketSlot { relay: Relay | null } }
// so this file imports none of them (the transport is the bottom layer; no import cycles). Their
// names are listed in newSlot() so that every slot is made with the same shape.

import type net from 'node:net';
import type { TcpHandle } from './tcp-handle';

/** One connection end's state, its fields declared by their owners (see above); null when unused. */
export interface SocketSlot {}

/**
 * Every owner's field, in one order: one shape for all slots. tracked: listener/connection-stats.ts;
 * session: l4/tcp-proxy.ts; connection: upstream/connect.ts; relay: l4/relay.ts; inspector:
 * listener/inspect-handle.ts; earlySession: l4/handle-proxy.ts; side: l4/handle-relay.ts.
 */
function newSlot(): SocketSlot {
  return { tracked: null, session: null, connection: null, relay: null, inspector: null, earlySession: null, side: null };
}

const kSlot = Symbol('sluice.slot');
type Slotted = { [kSlot]?: SocketSlot };

/** The socket's or handle's slot, created on first use. */
export function slotOf(owner: net.Socket | TcpHandle): SocketSlot {
  const s = owner as unknown as Slotted;
  let slot = s[kSlot];
  if (slot === undefined) {
    slot = newSlot();
    s[kSlot] = slot;
  }
  return slot;
}
