// Listener-level accounting for an accepted downstream connection (`listener.<addr>_<port>.*`):
// downstream_cx_total / _active / _destroy / _length_ms, done once per connection.

import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ListenerStats } from '../observe/stats';
import { slotOf } from '../transport/socket-slot';

export class TrackedDownstream {
  constructor(readonly stats: ListenerStats, readonly start: number) {}
}

/** Count a connection the listener accepted; `closeTracked` when it has closed. */
export function openTracked(stats: ListenerStats): TrackedDownstream {
  stats.downstream_cx_total.inc();
  stats.downstream_cx_active.inc();
  return new TrackedDownstream(stats, performance.now());
}

export function closeTracked(t: TrackedDownstream): void {
  t.stats.downstream_cx_active.dec();
  t.stats.downstream_cx_destroy.inc();
  t.stats.downstream_cx_length_ms.record(performance.now() - t.start);
}

// One shared 'close' listener ('on': close fires once, and once() allocates a wrapper); the
// per-connection state is in the socket's slot (socket-slot.ts): no closure per accepted connection.
function onClose(this: net.Socket): void {
  closeTracked(slotOf(this).tracked!);
}

/** The socket's close ends the tracked connection. */
export function trackSocket(socket: net.Socket, tracked: TrackedDownstream): void {
  slotOf(socket).tracked = tracked;
  socket.on('close', onClose);
}

export function trackDownstream(socket: net.Socket, stats: ListenerStats): void {
  trackSocket(socket, openTracked(stats));
}

export function formatSocketAddress(ip: string | undefined, port: number | undefined): string {
  if (ip === undefined) return '-';
  const bare = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  return (bare.includes(':') ? '[' + bare + ']' : bare) + ':' + (port ?? 0);
}

export function bareIp(ip: string | undefined): string {
  if (ip === undefined) return '';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}
