// connectionPool.tcp.tcpKeepalive on upstream connections, read back from the kernel: SO_KEEPALIVE,
// TCP_KEEPIDLE (time), TCP_KEEPINTVL (interval) and TCP_KEEPCNT (probes), on both connectors (the
// net.Socket one and the bare-handle one). Node sets only the first two; the addon sets the others.
// python3 gets the proxy's socket as its fd 3 and asks getsockopt, so the kernel is the witness.

import { spawn } from 'node:child_process';
import net from 'node:net';
import t from 'tap';
import { ClusterStats, StatsStore } from '../../../../proxy/observe/stats';
import { connectUpstream } from '../../../../proxy/upstream/connect';
import { connectHandle } from '../../../../proxy/upstream/handle-connect';
import { UpstreamHost } from '../../../../proxy/upstream/host';
import { tcpHandles } from '../../../../proxy/transport/tcp-handle';
import { keepAliveProbesSupported } from '../../../../proxy/transport/original-dst';

const probe = [
  'import socket',
  's = socket.socket(fileno=3)',
  'print(s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),',
  '      s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL), s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT))',
  's.detach()',
].join('\n');

function keepaliveOf(fd: number): Promise<number[]> {
  const child = spawn('python3', ['-c', probe], { stdio: ['ignore', 'pipe', 'inherit', fd] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += String(d)));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out.trim().split(/\s+/).map(Number)) : reject(new Error(`python3 exited ${code}`))));
  });
}

const KA = { timeMs: 30_000, intervalMs: 7_000, probes: 4 };
const skip = keepAliveProbesSupported() ? false : 'the native addon is not built, or built before setKeepAliveProbes (npm run build:addon)';

async function listener(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const server = net.createServer((s) => s.on('error', () => undefined));
  const sockets: net.Socket[] = [];
  server.on('connection', (s) => sockets.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }));
  return (server.address() as net.AddressInfo).port;
}

t.test('net.Socket upstream connections carry all four keepalive settings', { skip }, async (t) => {
  const port = await listener(t);
  const stats = new ClusterStats(new StatsStore(), 'outbound|80||ka.test');
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    connectUpstream(stats, new UpstreamHost('127.0.0.1', port, '', null), { connectTimeoutMs: 5000, tls: null, sni: null, keepalive: KA }, (err, s) => (err ? reject(err) : resolve(s!)));
  });
  t.teardown(() => socket.destroy());
  const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd;
  t.same(await keepaliveOf(fd), [1, 30, 7, 4], 'SO_KEEPALIVE on, idle 30 s, interval 7 s, 4 probes');
});

t.test('bare-handle upstream connections too', { skip: skip || (tcpHandles() === null ? 'no bare TCP handles here' : false) }, async (t) => {
  const port = await listener(t);
  const stats = new ClusterStats(new StatsStore(), 'outbound|81||ka.test');
  const conn = await new Promise<{ handle: { fd: number; close(): void } }>((resolve, reject) => {
    connectHandle(stats, new UpstreamHost('127.0.0.1', port, '', null), { connectTimeoutMs: 5000, tls: null, sni: null, keepalive: KA }, (err, c) => (err ? reject(err) : resolve(c as never)));
  });
  const values = await keepaliveOf(conn.handle.fd);
  conn.handle.close();
  t.same(values, [1, 30, 7, 4]);
});

t.test('control: without tcpKeepalive the kernel defaults stay (keepalive off)', { skip }, async (t) => {
  const port = await listener(t);
  const stats = new ClusterStats(new StatsStore(), 'outbound|82||ka.test');
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    connectUpstream(stats, new UpstreamHost('127.0.0.1', port, '', null), { connectTimeoutMs: 5000, tls: null, sni: null, keepalive: null }, (err, s) => (err ? reject(err) : resolve(s!)));
  });
  t.teardown(() => socket.destroy());
  const [on] = await keepaliveOf((socket as unknown as { _handle: { fd: number } })._handle.fd);
  t.equal(on, 0, 'SO_KEEPALIVE off');
});
