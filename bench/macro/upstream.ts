// The benchmark's upstreams, in their own process so the proxy's CPU is read alone. Forked by
// bench/run.ts (or run inside a network namespace by bench/macro/capture.ts) with a JSON argument;
// prints one JSON line `{"ready":true,"ports":{...}}` on stdout once every port listens.
//
// Servers (each on 127.0.0.1 unless `host` says otherwise, ports chosen by the kernel):
// - tcp:  a one-byte command protocol, so one port serves every L4 scenario:
//         'B' -> stream bytes until the client goes away (bulk), 'S' -> one byte then close (short
//         connection), 'H' -> one byte then stay open (idle connection for the RSS count).
// - tls:  the same protocol behind TLS (SNI passthrough: the proxy never sees the plaintext).
// - http: HTTP/1.1 keep-alive, a canned 200 with a 12-byte body per request head. It does no more
//         than find the end of each head, so the upstream costs as little CPU as possible and the
//         proxy under test gets the rest of the 2 cores.
// - httpClose: the same, but every response says `connection: close` and the upstream closes (wrk
//         then opens a new connection per request: the L4 new-connection row).
// - http1k: the same as http with a 1,024-byte body (the two-hop latency row, Istio's 1 kB payload).
// - https: the same behind TLS, closing every `maxRequestsPerConnection`-th connection so proxies
//         re-handshake (and should resume their TLS session) during the run.
// IPC 'stats' answers with TLS handshake counts (full vs resumed) and the CPU used so far.

import net from 'node:net';
import tls from 'node:tls';
import fs from 'node:fs';

export interface UpstreamOptions {
  host?: string;
  /** fixed ports (0 = any); capture.ts needs a known TCP port inside its namespace */
  tcpPort?: number;
  /** fixed HTTP port (0 = any); inbound.ts declares it in a ServiceEntry */
  httpPort?: number;
  cert?: string;
  key?: string;
  maxRequestsPerConnection?: number;
  /** which servers to start; default all that the options allow */
  only?: ('tcp' | 'tls' | 'http' | 'https' | 'httpClose' | 'http1k')[];
}

export interface UpstreamPorts { tcp?: number; tls?: number; http?: number; https?: number; httpClose?: number; http1k?: number }

const BLOCK = Buffer.alloc(256 * 1024, 0x61);
const ONE = Buffer.from('k');
const RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 12\r\n\r\nhello world\n', 'latin1');
const RESPONSE_CLOSE = Buffer.from('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 12\r\nconnection: close\r\n\r\nhello world\n', 'latin1');
const RESPONSE_1K = Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1024\r\n\r\n${'k'.repeat(1023)}\n`, 'latin1');

const stats = { handshakes: 0, resumed: 0, httpRequests: 0 };

function ignore(): void {}

/** Stream BLOCK until the peer goes away, respecting backpressure. */
function pumpBulk(s: net.Socket): void {
  const pump = (): void => {
    while (!s.destroyed && s.write(BLOCK));
    if (!s.destroyed) s.once('drain', pump);
  };
  pump();
}

function onCommandSocket(s: net.Socket): void {
  s.setNoDelay(true);
  s.on('error', ignore);
  s.once('data', (d: Buffer) => {
    const cmd = d[0];
    if (cmd === 0x42 /* B */) pumpBulk(s);
    else if (cmd === 0x53 /* S */) s.end(ONE);
    else if (cmd === 0x48 /* H */) s.write(ONE);
    else s.destroy();
  });
}

/** Per-connection HTTP state: how much of "\r\n\r\n" the previous chunk ended with. */
class HttpConn {
  matched = 0;
  served = 0;
  constructor(readonly socket: net.Socket, readonly max: number, readonly response: Buffer) {}
}

function onHttpData(this: HttpConn, d: Buffer): void {
  let m = this.matched;
  for (let i = 0; i < d.length; i++) {
    const c = d[i];
    if (c === 13) m = m === 2 ? 3 : 1;
    else if (c === 10 && (m === 1 || m === 3)) {
      if (m === 3) {
        m = 0;
        stats.httpRequests++;
        this.served++;
        if (this.max > 0 && this.served >= this.max) {
          this.socket.end(RESPONSE_CLOSE);
          return;
        }
        this.socket.write(this.response);
      } else m = 2;
    } else m = 0;
  }
  this.matched = m;
}

function httpHandler(max: number, response = RESPONSE): (s: net.Socket) => void {
  return (s) => {
    s.setNoDelay(true);
    s.on('error', ignore);
    s.on('data', onHttpData.bind(new HttpConn(s, max, response)));
  };
}

function listen(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: 4096 }, () => resolve((server.address() as net.AddressInfo).port));
  });
}

function countHandshake(s: tls.TLSSocket): void {
  stats.handshakes++;
  if (s.isSessionReused()) stats.resumed++;
}

export async function startUpstreams(o: UpstreamOptions): Promise<UpstreamPorts> {
  const host = o.host ?? '127.0.0.1';
  const want = new Set(o.only ?? ['tcp', 'tls', 'http', 'https', 'httpClose', 'http1k']);
  const ports: UpstreamPorts = {};
  if (want.has('tcp')) ports.tcp = await listen(net.createServer({ noDelay: true }, onCommandSocket), host, o.tcpPort ?? 0);
  if (want.has('http')) ports.http = await listen(net.createServer({ noDelay: true }, httpHandler(0)), host, o.httpPort ?? 0);
  if (want.has('httpClose')) ports.httpClose = await listen(net.createServer({ noDelay: true }, httpHandler(1)), host, 0);
  if (want.has('http1k')) ports.http1k = await listen(net.createServer({ noDelay: true }, httpHandler(0, RESPONSE_1K)), host, 0);
  if (o.cert !== undefined && o.key !== undefined) {
    const cred = { cert: fs.readFileSync(o.cert), key: fs.readFileSync(o.key) };
    if (want.has('tls')) {
      const s = tls.createServer(cred, onCommandSocket);
      s.on('secureConnection', countHandshake);
      ports.tls = await listen(s, host, 0);
    }
    if (want.has('https')) {
      const s = tls.createServer(cred, httpHandler(o.maxRequestsPerConnection ?? 0));
      s.on('secureConnection', countHandshake);
      ports.https = await listen(s, host, 0);
    }
  }
  return ports;
}

async function main(): Promise<void> {
  const o = JSON.parse(process.argv[2] ?? '{}') as UpstreamOptions;
  const ports = await startUpstreams(o);
  process.stdout.write(JSON.stringify({ ready: true, ports }) + '\n');
  process.on('message', (m: unknown) => {
    if (m === 'stats') {
      const u = process.cpuUsage();
      process.send?.({ ...stats, cpuUs: u.user + u.system });
    }
  });
  // Exit with the parent: when forked, a closed IPC channel; otherwise stdin closing.
  if (process.send !== undefined) process.on('disconnect', () => process.exit(0));
  else {
    process.stdin.resume();
    process.stdin.on('end', () => process.exit(0));
  }
}

if (require.main === module) void main();
