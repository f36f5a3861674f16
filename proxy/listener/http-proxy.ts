// An explicit HTTP proxy listener for the sidecar (Istio's HTTP_PROXY port protocol): clients that
// cannot be captured by iptables (no root, e.g. `npm start`'s demo, or `http_proxy=` setups) send
// absolute-form requests (`GET http://edition.cnn.com/politics HTTP/1.1`). Each request is routed
// exactly as a captured one would be: by the URI's port to the sidecar's `0.0.0.0_<port>` HTTP
// listener, then by Host. Unknown ports use the catch-all (allow_any / block_all). CONNECT host:port
// opens a tunnel routed as a captured connection to host:port would be (l7/connect.ts).

import http from 'node:http';
import type net from 'node:net';
import type { HttpConnectionManager, Snapshot } from '../../config/compile/snapshot';
import type { ProxyContext } from '../context';
import { serveConnect } from '../l7/connect';
import { DownstreamInfo, routeRequest } from '../l7/http-connection';
import { trackDownstream } from './connection-stats';
import { bareIp, formatSocketAddress } from '../transport/socket-addresses';
import { dataPortListenOptions } from './listen-options';

/** Per snapshot, the connection manager a request to each port takes: found (or made) once per port, not per request. */
const managers = new WeakMap<Snapshot, Map<number, HttpConnectionManager>>();
const MAX_CACHED_PORTS = 1024;

/** The sidecar's `0.0.0.0_<port>` HTTP listener's, else the catch-all's (allow_any / block_all) for that port. */
function connectionManagerFor(snapshot: Snapshot, port: number): HttpConnectionManager {
  let byPort = managers.get(snapshot);
  if (byPort === undefined) {
    byPort = new Map();
    managers.set(snapshot, byPort);
  }
  let hcm = byPort.get(port);
  if (hcm === undefined) {
    const chain = snapshot.listeners.get('0.0.0.0_' + port)?.chains.find((c) => c.filter.kind === 'http');
    hcm = chain !== undefined && chain.filter.kind === 'http'
      ? chain.filter
      : { kind: 'http', statPrefix: 'outbound_0.0.0.0_' + port, httpsRedirect: false, routeConfig: { name: String(port), virtualHosts: [snapshot.catchAll.httpHost], exactDomains: new Map(), wildcardDomains: [], defaultHost: snapshot.catchAll.httpHost } };
    // Ports come from clients: bounded, past that a rare port's is made per request again.
    if (byPort.size < MAX_CACHED_PORTS) byPort.set(port, hcm);
  }
  return hcm;
}

export class HttpProxyListener {
  private readonly ctx: ProxyContext;
  private readonly server: http.Server;
  private readonly port: number;

  constructor(ctx: ProxyContext, port: number) {
    this.ctx = ctx;
    this.port = port;
    this.server = http.createServer({ requireHostHeader: false, noDelay: true, keepAlive: true }, (req, res) => this.onRequest(req, res));
    this.server.on('connection', (socket: net.Socket) => {
      const guard = ctx.admission.guard('0.0.0.0_' + port);
      if (ctx.admission.admit(guard)) trackDownstream(socket, ctx.listenerStatsFor('0.0.0.0_' + port), guard);
      else socket.destroy();
    });
    this.server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      serveConnect(ctx, req, socket, head, { remoteIp: bareIp(socket.remoteAddress), remoteAddress: formatSocketAddress(socket.remoteAddress, socket.remotePort) });
    });
  }

  listen(host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(dataPortListenOptions(host, this.port), () => resolve((this.server.address() as net.AddressInfo).port));
    });
  }

  address(): { name: string; address: string } {
    const a = this.server.address() as net.AddressInfo | null;
    return { name: 'httpProxy', address: a === null ? '-' : `${a.address}:${a.port}` };
  }

  close(): void {
    this.server.close();
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const ctx = this.ctx;
    const snapshot = ctx.snapshot;
    let port = 80;
    let host = '';
    try {
      const u = new URL(req.url ?? '');
      port = u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port);
      host = u.hostname;
    } catch {
      // origin-form request: use the Host header and port 80
      host = (req.headers.host ?? '').split(':')[0] ?? '';
    }
    const hcm = connectionManagerFor(snapshot, port);
    const info = new DownstreamInfo({
      hcm,
      httpStats: ctx.httpStatsFor(hcm.statPrefix),
      // PassthroughCluster needs a destination: the URI's host and port (resolved when connecting).
      originalDst: { address: host, port },
      localAddress: formatSocketAddress(host, port),
      remoteIp: bareIp(req.socket.remoteAddress),
      remoteAddress: formatSocketAddress(req.socket.remoteAddress, req.socket.remotePort),
      sni: null,
      peerUriSan: null,
      scheme: 'http',
      appendXff: false,
      absoluteForm: true,
    });
    routeRequest(ctx, info, req, res);
  }
}
