// Listener-level accounting for an accepted downstream connection (`listener.<addr>_<port>.*`):
// downstream_cx_total / _active / _destroy / _length_ms, done once per connection.

import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ListenerStats } from '../observe/stats';

export function trackDownstream(socket: net.Socket, stats: ListenerStats): void {
  stats.downstream_cx_total.inc();
  stats.downstream_cx_active.inc();
  const start = performance.now();
  socket.once('close', () => {
    stats.downstream_cx_active.dec();
    stats.downstream_cx_destroy.inc();
    stats.downstream_cx_length_ms.record(performance.now() - start);
  });
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
