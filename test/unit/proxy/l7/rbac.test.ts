// AuthorizationPolicy on an egress gateway, over ISTIO_MUTUAL: real curl presents a workload
// certificate (SPIFFE URI SAN, made by openssl from a test CA) to a gateway Runtime on loopback.
// The billing identity may reach api.pay.example; the web identity is refused as Envoy's RBAC
// filter refuses (403 `RBAC: access denied`, flag RBAC), a DENY policy wins over the ALLOW, and
// every verdict is counted (http.<prefix>.rbac.allowed|denied), logged and audited.

import fs from 'node:fs';
import http from 'node:http';
import { execFile } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { makeCa, makeWorkloadCerts, type CertFiles, type WorkloadCerts } from '../../../e2e/harness/certs';
import { curl } from '../../../helpers/curl';
import { freePort, startTestRuntime } from '../../../helpers/gateway';

t.setTimeout(60_000); // a bound for a hang, not a timed assertion

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-rbac-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const BILLING = 'spiffe://cluster.local/ns/default/sa/billing';
const WEB = 'spiffe://cluster.local/ns/default/sa/web';
let ca: CertFiles;
let gatewayCerts: WorkloadCerts;
let billing: WorkloadCerts;
let web: WorkloadCerts;
t.before(async () => {
  ca = await makeCa(dir, 'ca');
  gatewayCerts = await makeWorkloadCerts(path.join(dir, 'gw'), ca, 'spiffe://cluster.local/ns/istio-system/sa/egressgateway');
  billing = await makeWorkloadCerts(path.join(dir, 'billing'), ca, BILLING);
  web = await makeWorkloadCerts(path.join(dir, 'web'), ca, WEB);
});

function config(gwPort: number, upstreamPort: number, tcpPort: number, echoPort: number): string {
  return `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: pay, namespace: istio-system }
spec:
  hosts: [api.pay.example]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http: ${upstreamPort} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: db, namespace: istio-system }
spec:
  hosts: [db.pay.example]
  ports: [{ number: 5432, name: tcp, protocol: TCP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { tcp: ${echoPort} } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: db, namespace: istio-system }
spec:
  hosts: [db.pay.example]
  gateways: [egress]
  tcp:
  - match: [{ port: ${tcpPort} }]
    route: [{ destination: { host: db.pay.example, port: { number: 5432 } } }]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: egress, namespace: istio-system }
spec:
  selector: { istio: egressgateway }
  servers:
  - port: { number: ${gwPort}, name: https, protocol: HTTPS }
    hosts: [api.pay.example]
    tls: { mode: ISTIO_MUTUAL }
  - port: { number: ${tcpPort}, name: tls-db, protocol: TLS }
    hosts: [db.pay.example]
    tls: { mode: ISTIO_MUTUAL }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: pay, namespace: istio-system }
spec:
  hosts: [api.pay.example]
  gateways: [egress]
  http:
  - name: to-pay
    route: [{ destination: { host: api.pay.example, port: { number: 80 } } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: billing-to-pay, namespace: istio-system }
spec:
  selector: { matchLabels: { istio: egressgateway } }
  action: ALLOW
  rules:
  - from: [{ source: { principals: [cluster.local/ns/default/sa/billing] } }]
    to: [{ operation: { hosts: [api.pay.example], methods: [GET, POST] } }]
  - from: [{ source: { principals: [cluster.local/ns/default/sa/billing] } }]
    to: [{ operation: { hosts: [db.pay.example], ports: ["${tcpPort}"] } }]
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: { name: no-refunds, namespace: istio-system }
spec:
  action: DENY
  rules:
  - to: [{ operation: { ports: ["${gwPort}"], paths: [/refunds*] } }]
`;
}

t.test('billing reaches api.pay.example, web gets 403 RBAC, DENY wins over ALLOW', async (t) => {
  const upstream = http.createServer((req, res) => res.end('paid ' + req.url));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    upstream.closeAllConnections();
    upstream.close(() => r());
  }));
  const echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => echo.close(() => r())));
  const gwPort = await freePort();
  const tcpPort = await freePort();
  const auditFile = path.join(dir, 'audit.log');
  const rt = await startTestRuntime(t, config(gwPort, (upstream.address() as net.AddressInfo).port, tcpPort, (echo.address() as net.AddressInfo).port), {
    certsDir: gatewayCerts.dir, auditLog: { path: auditFile },
  });
  const as = (who: WorkloadCerts, p: string): Promise<{ code: number; stdout: string; stderr: string }> => curl([
    '-k', '--cert', who.certChainFile, '--key', who.keyFile, '--resolve', `api.pay.example:${gwPort}:127.0.0.1`,
    '-w', '\n%{http_code}', `https://api.pay.example:${gwPort}${p}`,
  ]);

  const ok = await as(billing, '/charge');
  t.equal(ok.stdout, 'paid /charge\n200', 'billing: allowed and forwarded: ' + ok.stderr);
  const denied = await as(web, '/charge');
  t.equal(denied.stdout, 'RBAC: access denied\n403', 'web: 403 with Envoy\'s RBAC body');
  const refund = await as(billing, '/refunds/1');
  t.equal(refund.stdout, 'RBAC: access denied\n403', 'billing on a DENY path: DENY is evaluated before ALLOW');

  const lines = await rt.lines();
  t.ok(lines.some((l) => / 403 RBAC rbac_access_denied_matched_policy\[none\] .*"api\.pay\.example:\d+"/.test(l)), 'access log: flag RBAC, no ALLOW matched: ' + lines.join('\n'));
  t.ok(lines.some((l) => / 403 RBAC rbac_access_denied_matched_policy\[ns\[istio-system\]-policy\[no-refunds\]-rule\[0\]\]/.test(l)), 'access log: the DENY policy named');
  const prefix = [...rt.rt.stats.all()].find((s) => /^http\..*\.rbac\.denied$/.test(s.name))?.name.slice(0, -'.rbac.denied'.length);
  t.ok(prefix !== undefined, 'rbac stats exist');
  t.equal(rt.stat(`${prefix}.rbac.allowed`), 1, 'rbac.allowed');
  t.equal(rt.stat(`${prefix}.rbac.denied`), 2, 'rbac.denied');

  await rt.rt.flushAccessLog();
  const audit = fs.readFileSync(auditFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.match(audit.find((a) => a['source'] === WEB), { decision: 'deny', reason: 'rbac:none', destination: 'api.pay.example', port: gwPort, response_code: 403 }, 'audit: web denied, by whom, to where');
  t.match(audit.find((a) => a['source'] === BILLING && a['response_code'] === 200), { decision: 'allow', route: 'to-pay' }, 'audit: billing allowed, route named');
  t.match(audit.find((a) => a['path'] === '/refunds/1'), { decision: 'deny', reason: 'rbac:ns[istio-system]-policy[no-refunds]-rule[0]' });

  // TLS (ISTIO_MUTUAL) terminated into TCP: the network RBAC filter, checked once per connection.
  const tcp = (who: WorkloadCerts): Promise<string> => new Promise((resolve) => {
    const c = execFile('openssl', ['s_client', '-quiet', '-no_ign_eof', '-connect', `127.0.0.1:${tcpPort}`, '-servername', 'db.pay.example', '-cert', who.certChainFile, '-key', who.keyFile],
      { timeout: 10_000 }, (_err, stdout) => resolve(stdout));
    c.stdin!.write('ping\n');
    setTimeout(() => c.stdin!.end(), 1000);
  });
  t.equal(await tcp(billing), 'ping\n', 'billing: the TCP bytes reach db.pay.example and come back');
  t.equal(await tcp(web), '', 'web: closed before a byte is relayed');
  const tcpLines = (await rt.lines()).filter((l) => l.includes('db.pay.example'));
  t.ok(tcpLines.some((l) => /"- - -" 0 RBAC - rbac_access_denied_matched_policy\[none\]/.test(l)), 'access log: the denied connection, flag RBAC: ' + tcpLines.join('\n'));
  const tcpPrefix = [...rt.rt.stats.all()].find((s) => /^tcp\..*\.rbac\.denied$/.test(s.name))?.name.slice(0, -'.rbac.denied'.length);
  t.equal(rt.stat(`${tcpPrefix}.rbac.allowed`), 1, 'tcp rbac.allowed');
  t.equal(rt.stat(`${tcpPrefix}.rbac.denied`), 1, 'tcp rbac.denied');
});

t.test('--outbound-policy-mode report: what the policies deny is let through, audited would_deny (Envoy shadow rules)', async (t) => {
  const upstream = http.createServer((req, res) => res.end('paid ' + req.url));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    upstream.closeAllConnections();
    upstream.close(() => r());
  }));
  const echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => echo.close(() => r())));
  const gwPort = await freePort();
  const tcpPort = await freePort();
  const auditFile = path.join(dir, 'audit-report.log');
  const rt = await startTestRuntime(t, config(gwPort, (upstream.address() as net.AddressInfo).port, tcpPort, (echo.address() as net.AddressInfo).port), {
    certsDir: gatewayCerts.dir, auditLog: { path: auditFile }, outboundPolicyMode: 'report',
  });
  const r = await curl(['-k', '--cert', web.certChainFile, '--key', web.keyFile, '--resolve', `api.pay.example:${gwPort}:127.0.0.1`,
    '-w', '\n%{http_code}', `https://api.pay.example:${gwPort}/charge`]);
  t.equal(r.stdout, 'paid /charge\n200', 'web: let through in report mode');
  const tcpOut = await new Promise<string>((resolve) => {
    const c = execFile('openssl', ['s_client', '-quiet', '-no_ign_eof', '-connect', `127.0.0.1:${tcpPort}`, '-servername', 'db.pay.example', '-cert', web.certChainFile, '-key', web.keyFile],
      { timeout: 10_000 }, (_err, stdout) => resolve(stdout));
    c.stdin!.write('ping\n');
    setTimeout(() => c.stdin!.end(), 1000);
  });
  t.equal(tcpOut, 'ping\n', 'web on TCP: let through too');
  const shadow = [...rt.rt.stats.all()].filter((s) => /\.rbac\.shadow_denied$/.test(s.name)).map((s) => [s.name.split('.')[0], s.kind === 'histogram' ? -1 : s.value]);
  t.same(shadow.sort(), [['http', 1], ['tcp', 1]], 'counted as shadow denials (http and tcp)');
  t.notOk([...rt.rt.stats.all()].some((s) => /\.rbac\.denied$/.test(s.name) && s.kind !== 'histogram' && s.value > 0), 'nothing denied');
  await rt.rt.flushAccessLog();
  let audit: Record<string, unknown>[] = [];
  for (let i = 0; i < 100 && audit.length < 2; i++) {
    audit = fs.readFileSync(auditFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
    if (audit.length < 2) await new Promise((res) => setTimeout(res, 20));
  }
  t.match(audit.find((a) => a['protocol'] !== 'tcp'), { decision: 'would_deny', reason: 'rbac:none', source: WEB, response_code: 200 });
  t.match(audit.find((a) => a['protocol'] === 'tcp'), { decision: 'would_deny', reason: 'rbac:none', source: WEB, destination: 'db.pay.example' });
});
