// Sidecar role: the `virtualInbound` listener on 15006 that `sluice iptables` REDIRECTs the pod's
// incoming TCP to (config/compile/inbound.ts says what each port gets). For each connection the
// original destination (the pod's own address and port) is read from the kernel, then the port's
// inbound listener (or the passthrough one for an undeclared port) picks the chain by the mTLS
// mode, and dispatch.ts terminates mTLS with the workload identity, runs HTTP or TCP, and connects
// to the app on 127.0.0.1 from 127.0.0.6. Every connection counts in `listener.0.0.0.0_15006.*`,
// as Envoy's virtualInbound. A connection that was not redirected (someone dialled 15006 itself)
// is closed: its original destination is the inbound port, and forwarding it would loop.
//
// Connections take the net.Socket path: inbound connections are mostly terminated mTLS, which
// needs a socket anyway.

import net from 'node:net';
import type { Listener } from '../../config/compile/snapshot';
import type { ProxyContext } from '../context';
import { recordFor } from '../observe/access-log-record';
import { FLAG } from '../errors';
import { dispatchConnection, type AcceptedConnection } from './dispatch';
import { trackDownstream } from './connection-stats';
import { getOriginalDst } from '../transport/original-dst';
import { formatSocketAddress, SocketAddresses } from '../transport/socket-addresses';
import { dataPortListenOptions } from './listen-options';

/** At most one "plain text refused" process-log line per port per this many ms (a scan must not flood the log). */
const REFUSAL_LOG_INTERVAL_MS = 1_000;

export class InboundListener {
  readonly name = 'virtualInbound';
  private readonly server: net.Server;
  private readonly statsName: string;
  private readonly lastRefusalLog = new Map<number, number>();
  private readonly hooks: NonNullable<AcceptedConnection['inbound']>;

  constructor(private readonly ctx: ProxyContext, private readonly port: number) {
    this.statsName = '0.0.0.0_' + port;
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.onConnection(socket));
    this.hooks = { onNoChain: (conn, isTls) => this.refused(conn, isTls) };
  }

  listen(host: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(dataPortListenOptions(host, this.port), () => {
        this.server.removeListener('error', reject);
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

  /** The inbound listener for a pod port: the declared port's, else the passthrough one. */
  static listenerFor(ctx: ProxyContext, port: number): Listener | null {
    const inbound = ctx.snapshot.inbound;
    if (inbound === undefined) return null;
    return inbound.ports.get(port) ?? inbound.passthrough;
  }

  private onConnection(socket: net.Socket): void {
    const ctx = this.ctx;
    socket.on('error', noop);
    const listenerStats = ctx.listenerStatsFor(this.statsName);
    trackDownstream(socket, listenerStats);
    let od;
    try {
      od = getOriginalDst(socket);
    } catch (e) {
      ctx.log.error({ err: (e as Error).message }, 'inbound: cannot read the original destination; closing the connection');
      od = null;
    }
    const listener = od === null || od.port === this.port ? null : InboundListener.listenerFor(ctx, od.port);
    if (od === null || listener === null) {
      const r = recordFor({ localAddress: formatSocketAddress(socket.localAddress, socket.localPort), remoteAddress: formatSocketAddress(socket.remoteAddress, socket.remotePort), sni: null, peerUriSan: null });
      r.direction = 'inbound';
      r.addFlag(FLAG.NO_ROUTE_FOUND);
      r.connectionTerminationDetails = 'not redirected to the inbound port';
      ctx.accessLog.log(r);
      socket.destroy();
      return;
    }
    const l4 = new SocketAddresses(socket, od);
    if (ctx.accessLog.enabled) l4.prime();
    dispatchConnection(ctx, { socket, listener, listenerStats, l4, inbound: this.hooks });
  }

  /** No chain took the connection: under STRICT, plain text. Say so in the process log (rate-limited). */
  private refused(conn: AcceptedConnection, isTls: boolean): void {
    const port = conn.listener.port;
    const now = Date.now();
    if (now - (this.lastRefusalLog.get(port) ?? 0) < REFUSAL_LOG_INTERVAL_MS) return;
    this.lastRefusalLog.set(port, now);
    this.ctx.log.warn(
      { direction: 'inbound', port: conn.l4.originalDst?.port ?? port, downstream: conn.l4.remoteAddress, tls: isTls },
      isTls ? 'inbound connection refused: no filter chain accepts this TLS connection' : 'inbound plain-text connection refused: mTLS mode STRICT requires mutual TLS on this port',
    );
  }
}

function noop(): void {}
