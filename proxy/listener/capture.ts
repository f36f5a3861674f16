// Sidecar role: the `virtualOutbound` listener on 15001 that iptables REDIRECTs the application's
// outbound TCP to. For each connection the original destination is read from the kernel
// (SO_ORIGINAL_DST, original-dst.ts), then, as Envoy's `use_original_dst`, the connection goes to the
// virtual listener for `<ip>_<port>`, else `0.0.0.0_<port>`, else the catch-all
// (PassthroughCluster under ALLOW_ANY, BlackHoleCluster under REGISTRY_ONLY). Connections that were
// not redirected, or that target 15001 itself, are black-holed so the proxy can never loop.
// Connections arrive as bare handles where Node gives them, as on gateway ports (gateway.ts).

import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { findListener } from '../../config/compile/lookup';
import type { ProxyContext } from '../context';
import { AccessLogRecord } from '../observe/access-log-record';
import { proxyTcp } from '../l4/tcp-proxy';
import { planToCluster } from './tcp-plan';
import { dispatchConnection } from './dispatch';
import type { ListenerGuard } from './admission';
import { openTracked, trackDownstream } from './connection-stats';
import { getOriginalDst, getOriginalDstOf, type OriginalDst } from '../transport/original-dst';
import { acceptHandles, socketFor } from '../transport/accept-handles';
import { tcpHandles, type TcpHandle } from '../transport/tcp-handle';
import { formatSocketAddress, HandleAddresses, SocketAddresses } from '../transport/socket-addresses';
import { dispatchHandle, dispatchHandleToCluster } from './handle-dispatch';
import { dataPortListenOptions } from './listen-options';
import { ProxyErrorCode, rescueFor } from '../errors';

export class CaptureListener {
  private readonly ctx: ProxyContext;
  private readonly port: number;
  private readonly server: net.Server;
  readonly name: string;

  constructor(ctx: ProxyContext, port: number) {
    this.ctx = ctx;
    this.port = port;
    this.name = 'virtualOutbound';
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.onConnection(socket));
  }

  listen(host: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(dataPortListenOptions(host, this.port), () => {
        this.server.removeListener('error', reject);
        if (tcpHandles() !== null) acceptHandles(this.server, (client) => this.onHandle(client));
        resolve();
      });
    });
  }

  address(): { name: string; address: string } {
    const a = this.server.address() as net.AddressInfo | null;
    return { name: this.name, address: a === null ? '-' : `${a.address}:${a.port}` };
  }

  close(): void {
    this.server.close();
  }

  /** `guard`: the admission already taken (a handle that became a socket), else taken here. */
  private onConnection(socket: net.Socket, admitted: ListenerGuard | null = null): void {
    const ctx = this.ctx;
    socket.on('error', noop);
    const guard = admitted ?? ctx.admission.guard('0.0.0.0_' + this.port);
    if (admitted === null && !ctx.admission.admit(guard)) {
      socket.destroy();
      return;
    }
    const remoteAddress = formatSocketAddress(socket.remoteAddress, socket.remotePort);
    let od;
    try {
      od = getOriginalDst(socket);
    } catch (e) {
      ctx.log.error({ err: (e as Error).message }, 'cannot read the original destination; closing the connection');
      socket.once('close', () => guard.release()); // rare: not worth a tracked listener of its own
      this.blackhole(socket, remoteAddress, formatSocketAddress(socket.localAddress, socket.localPort), 'original_destination_unavailable');
      return;
    }
    if (od === null || od.port === this.port) {
      // Not redirected (a client dialled 15001 itself) or a loop back into the capture port:
      // Envoy's virtualOutbound-blackhole chain.
      const rootStats = ctx.listenerStatsFor('0.0.0.0_' + this.port);
      trackDownstream(socket, rootStats, guard);
      this.blackhole(socket, remoteAddress, formatSocketAddress(socket.localAddress, socket.localPort), null);
      return;
    }
    const snapshot = ctx.snapshot;
    const l4 = new SocketAddresses(socket, od);
    if (ctx.accessLog.enabled) l4.prime();
    const listener = findListener(snapshot, od.address, od.port);
    if (listener === null) {
      trackDownstream(socket, ctx.listenerStatsFor('0.0.0.0_' + this.port), guard);
      proxyTcp(ctx, socket, null, planToCluster(ctx, snapshot.catchAll.tcpCluster), l4);
      return;
    }
    const listenerStats = ctx.listenerStatsFor(listener.name);
    trackDownstream(socket, listenerStats, guard);
    dispatchConnection(ctx, { socket, listener, listenerStats, l4 });
  }

  /**
   * A connection accepted as a bare handle (accept-handles.ts): handle-dispatch.ts plans it once
   * and keeps it on handles unless the plan needs a net.Socket (then it goes the way above).
   */
  private onHandle(client: TcpHandle): void {
    const ctx = this.ctx;
    const guard = ctx.admission.guard('0.0.0.0_' + this.port);
    if (!ctx.admission.admit(guard)) {
      client.close();
      return;
    }
    let od: OriginalDst | null;
    try {
      od = getOriginalDstOf(client);
    } catch {
      od = null;
    }
    // Not redirected, a loop, or unreadable: the socket path says which, logs and black-holes it.
    if (od === null || od.port === this.port) {
      this.onConnection(socketFor(client), guard);
      return;
    }
    const snapshot = ctx.snapshot;
    const l4 = new HandleAddresses(client, od);
    if (ctx.accessLog.enabled) l4.prime();
    const listener = findListener(snapshot, od.address, od.port);
    if (listener === null) {
      const tracked = openTracked(ctx.listenerStatsFor('0.0.0.0_' + this.port), guard);
      dispatchHandleToCluster(ctx, client, snapshot.catchAll.tcpCluster, { l4 }, tracked);
      return;
    }
    const listenerStats = ctx.listenerStatsFor(listener.name);
    const tracked = openTracked(listenerStats, guard);
    dispatchHandle(ctx, client, { listener, listenerStats, l4 }, tracked);
  }

  private blackhole(socket: net.Socket, remoteAddress: string, localAddress: string, details: string | null): void {
    const r = new AccessLogRecord(Date.now(), performance.now());
    r.upstreamCluster = 'BlackHoleCluster';
    r.downstreamRemoteAddress = remoteAddress;
    r.downstreamLocalAddress = localAddress;
    r.addFlag(rescueFor(ProxyErrorCode.NO_HEALTHY_UPSTREAM).flags);
    r.connectionTerminationDetails = details;
    socket.destroy();
    this.ctx.accessLog.log(r);
  }
}

function noop(): void {}
