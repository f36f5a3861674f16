// Listener-level accounting for an accepted downstream connection (`listener.<addr>_<port>.*`):
// downstream_cx_total / _active / _destroy / _length_ms, done once per connection.

import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ListenerStats } from '../observe/stats';
import { slotOf } from '../socket-slot';

export class TrackedDownstream {
  constructor(readonly stats: ListenerStats, readonly start: number) {}
}

// One shared 'close' listener ('on': close fires once, and once() allocates a wrapper); the
// per-connection state is in the socket's slot (socket-slot.ts): no closure per accepted connection.
function onClose(this: net.Socket): void {
  const t = slotOf(this).tracked!;
  t.stats.downstream_cx_active.dec();
  t.stats.downstream_cx_destroy.inc();
  t.stats.downstream_cx_length_ms.record(performance.now() - t.start);
}

export function trackDownstream(socket: net.Socket, stats: ListenerStats): void {
  stats.downstream_cx_total.inc();
  stats.downstream_cx_active.inc();
  slotOf(socket).tracked = new TrackedDownstream(stats, performance.now());
  socket.on('close', onClose);
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
