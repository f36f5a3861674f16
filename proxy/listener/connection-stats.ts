// Listener-level accounting for an accepted downstream connection (`listener.<addr>_<port>.*`):
// downstream_cx_total / _active / _destroy / _length_ms, done once per connection.

import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ListenerStats } from '../observe/stats';
import type { ListenerGuard } from './admission';
import { slotOf } from '../transport/socket-slot';
import { socketFor } from '../transport/accept-handles';
import type { TcpHandle } from '../transport/tcp-handle';

declare module '../transport/socket-slot' {
  interface SocketSlot {
    /** listener accounting of an accepted connection */
    tracked: TrackedDownstream | null;
  }
}

export class TrackedDownstream {
  constructor(readonly stats: ListenerStats, readonly start: number, readonly guard: ListenerGuard | null) {}

  /** The connection has closed (whichever layer closed it). */
  close(): void {
    this.guard?.release();
    this.stats.downstream_cx_active.dec();
    this.stats.downstream_cx_destroy.inc();
    this.stats.downstream_cx_length_ms.record(performance.now() - this.start);
  }
}

/** Count a connection the listener accepted; `close()` it when it has closed. */
/** `guard`: the admission (admission.ts) this connection holds, given back when it closes. */
export function openTracked(stats: ListenerStats, guard: ListenerGuard | null = null): TrackedDownstream {
  stats.downstream_cx_total.inc();
  stats.downstream_cx_active.inc();
  return new TrackedDownstream(stats, performance.now(), guard);
}


// One shared 'close' listener ('on': close fires once, and once() allocates a wrapper); the
// per-connection state is in the socket's slot (socket-slot.ts): no closure per accepted connection.
function onClose(this: net.Socket): void {
  slotOf(this).tracked!.close();
}

/** The socket's close ends the tracked connection. */
export function trackSocket(socket: net.Socket, tracked: TrackedDownstream): void {
  slotOf(socket).tracked = tracked;
  socket.on('close', onClose);
}

export function trackDownstream(socket: net.Socket, stats: ListenerStats, guard: ListenerGuard | null = null): void {
  trackSocket(socket, openTracked(stats, guard));
}

/** The net.Socket path for a handle the listener has already counted (`openTracked`). */
export function trackedSocketFor(client: TcpHandle, tracked: TrackedDownstream): net.Socket {
  const socket = socketFor(client);
  socket.on('error', noop);
  trackSocket(socket, tracked);
  return socket;
}

function noop(): void {}
