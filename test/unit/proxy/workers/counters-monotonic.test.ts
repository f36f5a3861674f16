// `sluice run --concurrency 2`, real processes: SIGKILL a worker that has served traffic; no counter
// in /stats or /stats/prometheus may go down (Prometheus takes a decrease for a counter reset), and
// the replacement's traffic adds on top.

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { freePort, oneUpstreamConfig } from '../../../helpers/gateway';

const CLI = path.join(__dirname, '..', '..', '..', '..', 'proxy', 'cli.js');

function get(port: number, p: string, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${p}: ${res.statusCode}`))));
    }).on('error', reject);
  });
}

/** Every counter series of a Prometheus exposition (`# TYPE x counter`), and histogram _count/_sum. */
function promCounters(text: string): Map<string, number> {
  const counters = new Set<string>();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (counter|histogram)$/.exec(line);
    if (type !== null) {
      if (type[2] === 'counter') counters.add(type[1]!);
      else for (const suffix of ['_count', '_sum', '_bucket']) counters.add(type[1]! + suffix);
      continue;
    }
    const m = /^([a-zA-Z_:][\w:]*)(\{.*\})? (\S+)$/.exec(line);
    if (m !== null && counters.has(m[1]!)) out.set(m[1]! + (m[2] ?? ''), Number(m[3]));
  }
  return out;
}

/** `name: value` lines of /stats. */
function statsLines(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\S+): (\d+)$/.exec(line);
    if (m !== null) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

async function waitFor(pred: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 15_000;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('killing a worker never makes a counter go down', async (t) => {
  const upstream = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => upstream.close());
  const [gwPort, adminPort] = [await freePort(), await freePort()];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-mono-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'c.yaml'), oneUpstreamConfig({ gwPort, upstreamPort: (upstream.address() as net.AddressInfo).port }));
  const child = spawn(process.execPath, [CLI, 'run', '--role', 'gateway', '--labels', 'istio=egressgateway', '--config', dir, '--admin', `127.0.0.1:${adminPort}`,
    '--prometheus-port', 'off', '--health-port', 'off', '--concurrency', '2', '--access-log', 'off'], { env: { ...process.env, NODE_OPTIONS: '' }, stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  await waitFor(() => stderr.includes('sluice is live'), 'sluice is live');

  const N = 30;
  for (let i = 0; i < N; i++) await get(gwPort, '/r' + i, 'up.example');
  const statsBefore = statsLines(await get(adminPort, '/stats', 'admin'));
  const promBefore = promCounters(await get(adminPort, '/stats/prometheus', 'admin'));
  const rq = 'cluster.outbound|80||up.example.upstream_rq_total';
  t.equal(statsBefore.get(rq), N);

  const workers = execFileSync('ps', ['-o', 'pid=', '--ppid', String(child.pid)], { encoding: 'utf8' }).split('\n').map((l) => Number(l.trim())).filter((n) => n > 0);
  t.equal(workers.length, 2);
  process.kill(workers[0]!, 'SIGKILL');
  await waitFor(() => stderr.includes('replacement worker is live'), 'the replacement worker');

  const statsAfter = statsLines(await get(adminPort, '/stats', 'admin'));
  const promAfter = promCounters(await get(adminPort, '/stats/prometheus', 'admin'));
  t.equal(statsAfter.get(rq), N, '/stats: upstream_rq_total unchanged by the kill');
  // Prometheus says which series are counters; /stats does not, so there the counter-shaped names.
  let decreased: string[] = [];
  for (const [k, v] of promBefore) if ((promAfter.get(k) ?? 0) < v) decreased.push(`${k} ${v} -> ${promAfter.get(k)}`);
  t.same(decreased, [], `no Prometheus counter decreased (${promBefore.size} series compared)`);
  decreased = [];
  for (const [k, v] of statsBefore) if (/(_total|_rq_\dxx|_rq_\d{3}|_destroy|_completed|_fail\w*)$/.test(k) && (statsAfter.get(k) ?? 0) < v) decreased.push(`${k} ${v} -> ${statsAfter.get(k)}`);
  t.same(decreased, [], 'no /stats counter decreased');

  for (let i = 0; i < 10; i++) await get(gwPort, '/after' + i, 'up.example');
  t.equal(statsLines(await get(adminPort, '/stats', 'admin')).get(rq), N + 10, "the replacement's requests add on top");
});
