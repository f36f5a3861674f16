// Access log under load: a 30-second autocannon run through a real sluice gateway process
// writing its access log to a file. Checks that no line is lost — lines in the file == requests
// autocannon completed (+ the requests in flight when autocannon stopped, which the proxy logs with
// DC as Envoy does) — or that access_log.dropped says exactly how many were, and that the proxy's
// RSS stays bounded. Too long for `npm test`: run `npm run build && npm run load:access-log`.
//
// Knobs: DURATION (s, default 30), CONNECTIONS (default 50), CONCURRENCY (sluice workers, default 1),
// FORMAT (istio|envoy|json). Prints one JSON object; exit code 1 if a check fails.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { freePort } from '../helpers/free-port';

const DURATION = Number(process.env['DURATION'] ?? 30);
const CONNECTIONS = Number(process.env['CONNECTIONS'] ?? 50);
const CONCURRENCY = Number(process.env['CONCURRENCY'] ?? 1);
const FORMAT = process.env['FORMAT'] ?? 'istio';
const CLI = path.join(__dirname, '..', '..', 'proxy', 'cli.js');

function get(port: number, p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

/** RSS in bytes of a process and its children (the workers when CONCURRENCY > 1). */
function rssOfTree(pid: number): number {
  let total = 0;
  const read = (p: number): void => {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
      for (const t of fs.readdirSync(`/proc/${p}/task`)) {
        const kids = fs.readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim();
        for (const k of kids === '' ? [] : kids.split(' ')) read(Number(k));
      }
    } catch {
      // the process ended between reads
    }
  };
  read(pid);
  return total;
}

function statValue(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(name + ': '));
  return line === undefined ? NaN : Number(line.slice(name.length + 2));
}

async function main(): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-load-'));
  const upstream = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '12' });
    res.end('hello world\n');
  });
  upstream.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upstreamPort = (upstream.address() as net.AddressInfo).port;
  const gwPort = await freePort();
  const adminPort = await freePort();
  const logFile = path.join(dir, 'access.log');
  fs.writeFileSync(path.join(dir, 'config.yaml'), `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: backend }
spec:
  hosts: [backend.example]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http: ${upstreamPort} } }]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: istio-egressgateway }
spec:
  selector: { istio: egressgateway }
  servers: [{ port: { number: ${gwPort}, name: http, protocol: HTTP }, hosts: [backend.example] }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: backend }
spec:
  hosts: [backend.example]
  gateways: [istio-egressgateway]
  http: [{ route: [{ destination: { host: backend.example, port: { number: 80 } } }] }]
`);
  const proxy = spawn(process.execPath, [CLI, 'run', '--role', 'gateway', '--labels', 'istio=egressgateway', '--config', path.join(dir, 'config.yaml'),
    '--access-log', logFile, '--access-log-format', FORMAT, '--admin', `127.0.0.1:${adminPort}`, '--prometheus-port', 'off', '--health-port', 'off',
    '--concurrency', String(CONCURRENCY)], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, SLUICE_LOG_LEVEL: 'warn' } });
  const exited = new Promise<number | null>((r) => proxy.once('exit', (code) => r(code)));
  try {
    let ready = false;
    for (let i = 0; i < 100 && !ready; i++) {
      ready = await get(adminPort, '/ready').then((b) => b === 'LIVE\n', () => false);
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }
    if (!ready) throw new Error('sluice did not become ready in 10 s');
    const rssSamples: number[] = [rssOfTree(proxy.pid!)];
    const sampler = setInterval(() => rssSamples.push(rssOfTree(proxy.pid!)), 1000);
    const result = await autocannon({ url: `http://127.0.0.1:${gwPort}/`, headers: { host: 'backend.example' }, connections: CONNECTIONS, duration: DURATION });
    clearInterval(sampler);
    rssSamples.push(rssOfTree(proxy.pid!));
    // Let the proxy finish logging the requests autocannon abandoned, then read its counters.
    await new Promise((r) => setTimeout(r, 1000));
    const stats = await get(adminPort, '/stats?filter=' + encodeURIComponent('^(access_log\\.|http\\..*downstream_rq_total$)'));
    proxy.kill('SIGTERM'); // stop() flushes and closes the access log
    await exited;
    const lines = fs.readFileSync(logFile, 'utf8').split('\n').filter((l) => l !== '');
    const byCode = new Map<string, number>();
    for (const l of lines) {
      const code = FORMAT === 'json' ? String((JSON.parse(l) as { response_code: number }).response_code) : l.split('" ')[1]!.split(' ')[0]!;
      byCode.set(code, (byCode.get(code) ?? 0) + 1);
    }
    const written = statValue(stats, 'access_log.written');
    const dropped = statValue(stats, 'access_log.dropped');
    const completed = result.requests.total;
    const settle = rssSamples.slice(Math.floor(rssSamples.length / 3));
    const report = {
      duration_s: DURATION, connections: CONNECTIONS, concurrency: CONCURRENCY, format: FORMAT,
      autocannon: { completed, non2xx: result.non2xx, errors: result.errors, timeouts: result.timeouts, rps_mean: result.requests.average, latency_p99_ms: result.latency.p99 },
      access_log: { lines: lines.length, by_code: Object.fromEntries(byCode), written, dropped, bytes: fs.statSync(logFile).size },
      proxy_downstream_rq_total: NaN as number,
      rss_mb: { start: +(rssSamples[0]! / 2 ** 20).toFixed(1), max: +(Math.max(...rssSamples) / 2 ** 20).toFixed(1), last_two_thirds_min: +(Math.min(...settle) / 2 ** 20).toFixed(1), last_two_thirds_max: +(Math.max(...settle) / 2 ** 20).toFixed(1), end: +(rssSamples.at(-1)! / 2 ** 20).toFixed(1), samples: rssSamples.length },
    };
    const rqTotal = stats.split('\n').filter((l) => /^http\..*\.downstream_rq_total: /.test(l)).reduce((a, l) => a + Number(l.slice(l.indexOf(': ') + 2)), 0);
    const extra = lines.length - completed;
    const checks = {
      // Inside sluice: every line the sink accepted reached the file ...
      'lines == access_log.written': lines.length === written,
      // ... and every request the proxy saw is either a line or counted as dropped.
      'lines + access_log.dropped == downstream_rq_total': lines.length + dropped === rqTotal,
      // Against the client: every completed request has its line; the only extra lines are the
      // requests in flight when autocannon stopped (at most one per connection).
      'lines - completed in [0, connections]': extra >= 0 && extra <= CONNECTIONS,
      'RSS bounded (max < 2x the RSS after warm-up + 64 MiB)': Math.max(...settle) < 2 * Math.min(...settle) + 64 * 2 ** 20,
    };
    report.proxy_downstream_rq_total = rqTotal;
    process.stdout.write(JSON.stringify({ ...report, lines_minus_completed: extra, checks }, null, 2) + '\n');
    return Object.values(checks).every(Boolean) ? 0 : 1;
  } finally {
    if (proxy.exitCode === null) proxy.kill('SIGKILL');
    upstream.close();
    upstream.closeAllConnections();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`load test failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
