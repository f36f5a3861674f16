// `sluice run --concurrency 2` as a user runs it: a primary and two worker processes on loopback.
// Traffic spreads over the workers; the admin shows one proxy (counters summed), the access log on
// stdout has exactly one intact line per request, and a dead worker is replaced.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { freePort } from '../../../helpers/free-port';
import { oneUpstreamConfig } from '../../../helpers/gateway';
import { reusePortSupported } from '../../../../proxy/listener/listen-options';

const ROOT = path.join(__dirname, '..', '..', '..', '..', '..');
const CLI = path.join(ROOT, 'dist', 'proxy', 'cli.js');

function config(gwPort: number, upstreamPort: number): string {
  return oneUpstreamConfig({ gwPort, upstreamPort });
}

function get(port: number, p: string, opts: { host?: string; method?: string } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method: opts.method ?? 'GET', headers: { host: opts.host ?? 'up.example' }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function statValue(text: string, name: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith(name + ': '));
  return line === undefined ? null : Number(line.slice(name.length + 2));
}

/** Listening TCP sockets on `port` in this network namespace, from the kernel's table. */
function listeningSockets(port: number): number {
  const hexPort = ':' + port.toString(16).toUpperCase().padStart(4, '0');
  return fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length > 3 && f[1]!.endsWith(hexPort) && f[3] === '0A').length;
}

async function waitFor(pred: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('two workers behind one admin', async (t) => {
  const upstream = http.createServer((req, res) => res.end(`pid-of-upstream ${req.url}`));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => upstream.close());
  const gwPort = await freePort();
  const adminPort = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-mw-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'c.yaml'), config(gwPort, (upstream.address() as net.AddressInfo).port));

  const child: ChildProcess = spawn(process.execPath, [CLI, 'run', '--role', 'gateway', '--labels', 'istio=egressgateway', '--config', dir, '--admin', `127.0.0.1:${adminPort}`, '--prometheus-port', 'off', '--health-port', 'off', '--concurrency', '2'], {
    env: { ...process.env, NODE_OPTIONS: '', SLUICE_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  await waitFor(() => stderr.includes('sluice is live'), 'sluice is live');
  t.match(stderr, /"workers":2/, 'the primary reports two workers');
  // Where Node has reusePort each worker binds the port itself; else the primary holds the one socket.
  const sockets = reusePortSupported() ? 2 : 1;
  t.equal(listeningSockets(gwPort), sockets, `${sockets} listening socket(s) on the gateway port (reusePort ${reusePortSupported() ? 'on' : 'off'}, Node ${process.versions.node})`);

  const N = 40;
  for (let i = 0; i < N; i++) t.equal((await get(gwPort, '/r' + i)).status, 200);
  const stats = (await get(adminPort, '/stats', { host: 'admin' })).body;
  t.equal(statValue(stats, 'cluster.outbound|80||up.example.upstream_rq_total'), N, 'requests summed over both workers');
  t.equal(statValue(stats, 'cluster.outbound|80||up.example.upstream_rq_200'), N);
  t.equal(statValue(stats, 'server.concurrency'), 2);
  t.equal(statValue(stats, 'server.live'), 1, 'server.live from the workers');
  const prom = (await get(adminPort, '/stats/prometheus', { host: 'admin' })).body;
  t.match(prom, new RegExp(`\\nenvoy_cluster_upstream_rq_total\\{cluster_name="outbound\\|80\\|\\|up\\.example"\\} ${N}\\n`), 'Prometheus keeps the cluster_name label across workers');
  const perWorkerConnections = statValue(stats, 'cluster.outbound|80||up.example.upstream_cx_total');
  t.ok(perWorkerConnections !== null && perWorkerConnections >= 2, `both workers served traffic (upstream_cx_total ${perWorkerConnections}: one pool per worker)`);

  await waitFor(() => stdout.split('\n').filter((l) => l.includes('"GET /r')).length === N, 'all access-log lines');
  const lines = stdout.split('\n').filter((l) => l !== '');
  t.equal(lines.length, N, 'one access-log line per request on stdout');
  for (const l of lines) t.match(l, /^\[\S+\] "GET \/r\d+ HTTP\/1\.1" 200 - via_upstream .* outbound\|80\|\|up\.example /, 'each line intact');

  const clusters = (await get(adminPort, '/clusters', { host: 'admin' })).body;
  t.match(clusters, new RegExp(`outbound\\|80\\|\\|up\\.example::127\\.0\\.0\\.1:\\d+::rq_total::${N}\\n`), '/clusters sums the host counters of both workers');

  t.equal((await get(adminPort, '/reset_counters', { host: 'admin', method: 'POST' })).status, 200);
  await new Promise((r) => setTimeout(r, 100));
  const after = (await get(adminPort, '/stats', { host: 'admin' })).body;
  t.equal(statValue(after, 'cluster.outbound|80||up.example.upstream_rq_total'), 0, 'reset_counters reached every worker');

  // A worker that dies is replaced; traffic keeps flowing meanwhile.
  const workers = execFileSync('ps', ['-o', 'pid=', '--ppid', String(child.pid)], { encoding: 'utf8' }).split('\n').map((l) => Number(l.trim())).filter((n) => n > 0);
  t.equal(workers.length, 2, 'two worker processes');
  process.kill(workers[0]!, 'SIGKILL');
  await waitFor(() => stderr.includes('replacement worker is live'), 'the replacement worker');
  for (let i = 0; i < 10; i++) t.equal((await get(gwPort, '/after')).status, 200, 'still serving after a worker died');
  t.equal(listeningSockets(gwPort), sockets, 'the replacement listens as its predecessor did');

});
