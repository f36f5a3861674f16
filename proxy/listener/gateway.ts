// Gateway role: one real listening socket per Gateway server port in the snapshot (`0.0.0.0_<port>`).
// A reload opens sockets for new ports and closes those no longer configured (open connections on a
// closed port finish undisturbed); a port that cannot be bound is reported, counted and kept in
// `unbound()` (readiness is 503 while there is one: Kubernetes must not send traffic to a gateway
// that does not listen where its config says), the rest keep serving, and the next sync retries it. Which listener config applies is read from the current snapshot at accept time.
//
// Where Node gives bare TCP handles (proxy/transport/tcp-handle.ts), a port accepts handles
// (accept-handles.ts) and handle-dispatch.ts decides: a plain-TCP connection whose plan bare handles
// can carry is proxied on them (l4/handle-proxy.ts) without ever becoming a net.Socket; any other is
// wrapped in one and goes on with what was already decided.

import net from 'node:net';
import type { Snapshot } from '../../config/compile/snapshot';
import type { ProxyContext } from '../context';
import { dispatchConnection } from './dispatch';
import { openTracked, trackDownstream } from './connection-stats';
import { HandleAddresses, SocketAddresses } from '../transport/socket-addresses';
import { acceptHandles } from '../transport/accept-handles';
import { tcpHandles, type TcpHandle } from '../transport/tcp-handle';
import { dispatchHandle } from './handle-dispatch';
import { dataPortListenOptions } from './listen-options';

interface Bound {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly server: net.Server;
}

export class GatewayListeners {
  private readonly ctx: ProxyContext;
  private readonly bound = new Map<string, Bound>();
  /** listener name -> why it is not bound (`listen EACCES: permission denied 0.0.0.0:80`) */
  private readonly failed = new Map<string, string>();

  constructor(ctx: ProxyContext) {
    this.ctx = ctx;
  }

  /** Make the bound sockets match the snapshot's listeners. */
  async sync(snapshot: Snapshot): Promise<void> {
    const stats = this.ctx.stats;
    for (const [name, b] of this.bound) {
      if (!snapshot.listeners.has(name)) {
        b.server.close();
        this.bound.delete(name);
        stats.counter('listener_manager.listener_removed').inc();
      }
    }
    for (const name of this.failed.keys()) if (!snapshot.listeners.has(name)) this.failed.delete(name);
    const opening: Promise<void>[] = [];
    for (const l of snapshot.listeners.values()) {
      if (this.bound.has(l.name)) continue;
      opening.push(this.open(l.name, l.address, l.port));
    }
    await Promise.all(opening);
    stats.gauge('listener_manager.total_listeners_active').set(this.bound.size);
  }

  private open(name: string, address: string, port: number): Promise<void> {
    const ctx = this.ctx;
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.onConnection(name, socket));
    return new Promise((resolve) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        ctx.stats.counter('listener_manager.listener_create_failure').inc();
        ctx.log.error({ listener: name, err: err.code ?? err.message }, `cannot listen on ${address}:${port}: ${err.message}`);
        this.failed.set(name, `listener ${name} is not bound: ${err.message}`);
        resolve();
      });
      server.listen(dataPortListenOptions(address, port), () => {
        server.removeAllListeners('error');
        server.on('error', (err) => ctx.log.error({ listener: name, err: err.message }, 'listener error'));
        if (tcpHandles() !== null) acceptHandles(server, (client) => this.onHandle(name, client));
        this.bound.set(name, { name, address, port, server });
        this.failed.delete(name);
        ctx.stats.counter('listener_manager.listener_added').inc();
        ctx.stats.counter('listener_manager.listener_create_success').inc();
        resolve();
      });
    });
  }

  /** A connection accepted as a bare handle: the TCP fast path, else a net.Socket as before. */
  private onHandle(name: string, client: TcpHandle): void {
    const ctx = this.ctx;
    const listener = ctx.snapshot.listeners.get(name);
    if (listener === undefined) {
      client.close();
      return;
    }
    const guard = ctx.admission.guard(name);
    if (!ctx.admission.admit(guard)) {
      client.close();
      return;
    }
    const listenerStats = ctx.listenerStatsFor(name);
    const tracked = openTracked(listenerStats, guard);
    const l4 = new HandleAddresses(client);
    if (ctx.accessLog.enabled) l4.prime();
    dispatchHandle(ctx, client, { listener, listenerStats, l4 }, tracked);
  }

  private onConnection(name: string, socket: net.Socket): void {
    const ctx = this.ctx;
    socket.on('error', noop);
    const listener = ctx.snapshot.listeners.get(name);
    if (listener === undefined) {
      socket.destroy();
      return;
    }
    const guard = ctx.admission.guard(name);
    if (!ctx.admission.admit(guard)) {
      socket.destroy();
      return;
    }
    const listenerStats = ctx.listenerStatsFor(name);
    trackDownstream(socket, listenerStats, guard);
    const l4 = new SocketAddresses(socket);
    if (ctx.accessLog.enabled) l4.prime();
    dispatchConnection(ctx, { socket, listener, listenerStats, l4 });
  }

  addresses(): { name: string; address: string }[] {
    return [...this.bound.values()].map((b) => ({ name: b.name, address: `${b.address}:${(b.server.address() as net.AddressInfo | null)?.port ?? b.port}` }));
  }

  /** Why each configured listener that is not listening is not; empty when all are. */
  unbound(): string[] {
    return [...this.failed.values()];
  }

  close(): void {
    for (const b of this.bound.values()) b.server.close();
    this.bound.clear();
  }
}

function noop(): void {}
