// The egress audit log: the line's fields, size rotation that keeps whole lines and N files, no
// loss when the disk keeps up, counted drops when it does not, and the tee beside the access log in
// a running gateway.

import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { AccessLogRecord } from '../../../../proxy/observe/access-log-record';
import { createAccessLog } from '../../../../proxy/observe/access-log';
import { AUDIT_LOG_STATS, AuditLog, auditPathForProcess, formatAudit } from '../../../../proxy/observe/audit-log';
import { StatsStore } from '../../../../proxy/observe/stats';
import { freePort, startTestRuntime } from '../../../helpers/gateway';

function tmpDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-audit-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function httpRecord(i = 0): AccessLogRecord {
  const r = new AccessLogRecord(Date.UTC(2026, 10, 22, 3, 46, 23, 596), 0);
  r.method = 'GET';
  r.path = '/politics/' + i;
  r.protocol = 'HTTP/1.1';
  r.responseCode = 301;
  r.responseCodeDetails = 'via_upstream';
  r.bytesReceived = 0;
  r.bytesSent = 12;
  r.durationMs = 3.7;
  r.authority = 'edition.cnn.com:80';
  r.upstreamHost = '198.18.2.10:80';
  r.upstreamCluster = 'outbound|80||edition.cnn.com';
  r.downstreamLocalAddress = '198.18.1.1:80';
  r.downstreamRemoteAddress = '198.18.1.2:41822';
  r.routeName = 'to-cnn';
  return r;
}

t.test('formatAudit: identity, destination, port, cluster, bytes, result', async (t) => {
  t.same(JSON.parse(formatAudit(httpRecord())), {
    time: '2026-11-22T03:46:23.596Z', decision: 'allow', reason: null, source: '198.18.1.2:41822', source_address: '198.18.1.2:41822', destination: 'edition.cnn.com', sni: null,
    port: 80, protocol: 'HTTP/1.1', method: 'GET', path: '/politics/0', cluster: 'outbound|80||edition.cnn.com', upstream_host: '198.18.2.10:80',
    bytes_received: 0, bytes_sent: 12, duration_ms: 3, response_code: 301, response_flags: '-', response_code_details: 'via_upstream', route: 'to-cnn', direction: 'outbound',
  }, 'HTTP request: the Host without its port is the destination, the address the source');

  const tls = new AccessLogRecord(0, 0);
  tls.requestedServerName = 'edition.cnn.com';
  tls.downstreamPeerUriSan = 'spiffe://cluster.local/ns/default/sa/sleep';
  tls.downstreamRemoteAddress = '198.18.1.2:5000';
  tls.downstreamLocalAddress = '198.18.1.1:443';
  tls.upstreamCluster = 'outbound|443||edition.cnn.com';
  tls.bytesReceived = 627;
  tls.bytesSent = 1879689;
  const a = JSON.parse(formatAudit(tls)) as Record<string, unknown>;
  t.same([a['source'], a['source_address'], a['destination'], a['sni'], a['port'], a['protocol'], a['bytes_received'], a['bytes_sent']],
    ['spiffe://cluster.local/ns/default/sa/sleep', '198.18.1.2:5000', 'edition.cnn.com', 'edition.cnn.com', 443, 'tcp', 627, 1879689], 'TLS connection: mTLS identity, SNI');

  const tcp = new AccessLogRecord(0, 0);
  tcp.downstreamLocalAddress = '198.18.3.1:31400';
  tcp.addFlag('UH');
  tcp.upstreamCluster = 'BlackHoleCluster';
  const b = JSON.parse(formatAudit(tcp)) as Record<string, unknown>;
  t.same([b['source'], b['destination'], b['port'], b['response_flags'], b['response_code']], [null, '198.18.3.1', 31400, 'UH', 0], 'plain TCP: the address connected to');

  const v6 = httpRecord();
  v6.authority = '[2001:db8::1]:8080';
  t.equal(JSON.parse(formatAudit(v6)).destination, '2001:db8::1', 'IPv6 literal Host');

  const unnamed = httpRecord();
  unnamed.routeName = '';
  unnamed.routeSource = { kind: 'VirtualService', name: 'cnn', namespace: 'default', ruleIndex: 1, matchIndex: 0 };
  t.equal(JSON.parse(formatAudit(unnamed)).route, 'default/cnn.http.1.match.0', 'an unnamed VirtualService rule is named by where it is');
  unnamed.routeSource = null;
  t.equal(JSON.parse(formatAudit(unnamed)).route, null, 'no route matched: null');

  const denied = httpRecord();
  denied.policyDecision = 'would_deny';
  denied.policyReason = 'not_in_registry';
  const d = JSON.parse(formatAudit(denied)) as Record<string, unknown>;
  t.same([d['decision'], d['reason']], ['would_deny', 'not_in_registry'], 'the egress decision and its reason');
});

t.test('rotation by size: whole lines, at most maxBytes per file, keep N files', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'audit.log');
  const stats = new StatsStore();
  const lineBytes = Buffer.byteLength(formatAudit(httpRecord(100)));
  const maxBytes = lineBytes * 10 + lineBytes / 2; // 10 lines fit, the 11th does not
  const log = new AuditLog({ path: file, maxBytes, keep: 2 }, stats);
  for (let i = 100; i < 135; i++) log.log(httpRecord(i)); // 35 lines: files of 10, 10, 10, 5
  await log.close();
  t.same(fs.readdirSync(dir).sort(), ['audit.log', 'audit.log.1', 'audit.log.2'], 'current file + 2 kept, the oldest deleted');
  const paths = (f: string): string[] => fs.readFileSync(path.join(dir, f), 'utf8').split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { path: string }).path);
  t.same(paths('audit.log.2'), Array.from({ length: 10 }, (_, i) => '/politics/' + (110 + i)), '.2 holds the older full file');
  t.same(paths('audit.log.1'), Array.from({ length: 10 }, (_, i) => '/politics/' + (120 + i)));
  t.same(paths('audit.log'), Array.from({ length: 5 }, (_, i) => '/politics/' + (130 + i)), 'the current file has the newest lines');
  for (const f of fs.readdirSync(dir)) t.ok(fs.statSync(path.join(dir, f)).size <= maxBytes, `${f} within maxBytes`);
  t.equal(stats.get(AUDIT_LOG_STATS.rotated)?.kind === 'counter' ? (stats.get(AUDIT_LOG_STATS.rotated) as { value: number }).value : -1, 3, 'three rotations counted');
});

t.test('no loss when the disk keeps up; counted drops when the buffer is full', async (t) => {
  const dir = tmpDir(t);
  const stats = new StatsStore();
  const file = path.join(dir, 'a', 'audit.log');
  const log = new AuditLog({ path: file, maxBytes: 1 << 30 }, stats);
  // ~4 MB in one synchronous burst: below the 8 MiB bound, so nothing may be dropped.
  for (let i = 0; i < 10_000; i++) log.log(httpRecord(i));
  await log.flush();
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
  t.equal(lines.length, 10_000, 'every line reached the file (directory created)');
  t.equal((stats.get(AUDIT_LOG_STATS.written) as { value: number }).value, 10_000);
  t.equal((stats.get(AUDIT_LOG_STATS.dropped) as { value: number }).value, 0);
  await log.close();

  const small = new StatsStore();
  const file2 = path.join(dir, 'small.log');
  const lineBytes = Buffer.byteLength(formatAudit(httpRecord(1000)));
  const tiny = new AuditLog({ path: file2, maxBufferBytes: lineBytes * 3 }, small);
  // In one synchronous burst: the first line is handed to fs.write at once, then 3 fit the buffer.
  for (let i = 1000; i < 1100; i++) tiny.log(httpRecord(i));
  await tiny.close();
  const written = (small.get(AUDIT_LOG_STATS.written) as { value: number }).value;
  const dropped = (small.get(AUDIT_LOG_STATS.dropped) as { value: number }).value;
  t.same([written, dropped], [4, 96], 'bounded: 4 accepted, 96 dropped and counted');
  t.equal(fs.readFileSync(file2, 'utf8').split('\n').filter((l) => l !== '').length, written, 'file lines == written counter');
  t.equal(fs.existsSync(file2) && tiny.path, file2);
});

t.test('a bad path fails at startup with the path; workers get their own file', async (t) => {
  const dir = tmpDir(t);
  fs.writeFileSync(path.join(dir, 'file'), '');
  t.throws(() => new AuditLog({ path: path.join(dir, 'file', 'audit.log') }, new StatsStore()), { code: 'PRX_ERR_AUDIT_LOG_OPEN', message: /cannot open audit log ".*file\/audit\.log"/ });
  t.throws(() => new AuditLog({ path: path.join(dir, 'x.log'), keep: -1 }, new StatsStore()), TypeError);
  t.equal(auditPathForProcess('/var/log/audit.log', {}), '/var/log/audit.log');
  t.equal(auditPathForProcess('/var/log/audit.log', { SLUICE_WORKER_INDEX: '2' }), '/var/log/audit.log.worker-2');
});

t.test('tee: createAccessLog with audit writes both, flush and close cover both', async (t) => {
  const dir = tmpDir(t);
  const stats = new StatsStore();
  const sink = createAccessLog({ target: path.join(dir, 'access.log'), format: 'istio', audit: { path: path.join(dir, 'audit.log') } }, stats);
  sink.log(httpRecord(1));
  sink.log(httpRecord(2));
  await sink.flush();
  t.equal(fs.readFileSync(path.join(dir, 'access.log'), 'utf8').split('\n').length - 1, 2);
  t.equal(fs.readFileSync(path.join(dir, 'audit.log'), 'utf8').split('\n').length - 1, 2);
  await sink.close();
  sink.log(httpRecord(3));
  t.equal(fs.readFileSync(path.join(dir, 'audit.log'), 'utf8').split('\n').length - 1, 2, 'closed: ignored');
});

t.test('a running gateway writes one audit line per request', async (t) => {
  const upstream = http.createServer((_req, res) => res.end('hello'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => upstream.close(() => r())));
  const upstreamPort = (upstream.address() as net.AddressInfo).port;
  const gwPort = await freePort();
  const dir = tmpDir(t);
  const auditFile = path.join(dir, 'audit.log');
  const gw = await startTestRuntime(t, `
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
`, { auditLog: { path: auditFile } });
  for (const host of ['backend.example', 'nobody.example']) {
    await new Promise<void>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: gwPort, path: '/x', headers: { host }, agent: false }, (res) => res.resume().on('end', resolve)).on('error', reject);
    });
  }
  await gw.rt.flushAccessLog();
  const lines = fs.readFileSync(auditFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(lines.length, 2, 'one line per request, as many as access-log lines');
  t.equal((await gw.lines()).length, 2);
  t.match(lines[0], { destination: 'backend.example', port: gwPort, cluster: 'outbound|80||backend.example', upstream_host: `127.0.0.1:${upstreamPort}`, response_code: 200, response_flags: '-', bytes_sent: 5, method: 'GET' });
  t.match(lines[0]!['source'], /^127\.0\.0\.1:\d+$/, 'no client certificate: the address is the identity');
  t.match(lines[1], { destination: 'nobody.example', cluster: null, response_code: 404, response_flags: 'NR', response_code_details: 'route_not_found' }, 'refused requests are audited too');
});
