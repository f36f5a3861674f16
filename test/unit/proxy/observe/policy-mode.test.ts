// --outbound-policy-mode on a sidecar's explicit proxy port under REGISTRY_ONLY, driven by real curl
// (`-x` for plain HTTP, `-p -x` for a CONNECT tunnel) against a real HTTP server on loopback:
// enforce refuses an unregistered host (502 block_all / 403 CONNECT), report lets it through as
// ALLOW_ANY would; either way the audit line carries the decision, the reason, the requested host,
// the caller and the port, and the per-host denial counter names the host (/stats and Prometheus).

import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { curl } from '../../../helpers/curl';
import { startTestRuntime } from '../../../helpers/gateway';
import { renderPrometheus } from '../../../../proxy/observe/render-stats';
import type { OutboundPolicyMode } from '../../../../proxy/observe/egress-decision';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-policy-mode-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

// One registered host, so the sidecar has listeners; the hosts under test are in no ServiceEntry.
const config = (port: number): string => `
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: { name: reg, namespace: default }
spec:
  hosts: [reg.example]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http: ${port} } }]
`;

async function upstream(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const server = http.createServer((req, res) => res.end('hello ' + req.headers.host));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  }));
  return (server.address() as net.AddressInfo).port;
}

type Audit = Record<string, unknown>;
async function start(t: { teardown(fn: () => unknown): void }, mode: OutboundPolicyMode, port: number) {
  const auditFile = path.join(dir, `audit-${mode}.log`);
  const rt = await startTestRuntime(t, config(port), {
    role: 'sidecar', labels: { app: 'sleep' }, namespace: 'default', httpProxyPort: 0,
    outboundPolicy: 'REGISTRY_ONLY', outboundPolicyMode: mode, auditLog: { path: auditFile },
  });
  const audit = async (): Promise<Audit[]> => {
    await rt.rt.flushAccessLog();
    return fs.readFileSync(auditFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Audit);
  };
  return { rt, proxy: `http://127.0.0.1:${rt.rt.httpProxyPort}`, audit };
}

t.test('enforce: an unregistered host is refused, the audit line says deny and names it, the counter counts it', async (t) => {
  const port = await upstream(t);
  const { rt, proxy, audit } = await start(t, 'enforce', port);
  const plain = await curl(['-o', '/dev/null', '-w', '%{http_code}', '-x', proxy, `http://localhost:${port}/x`]);
  t.equal(plain.stdout, '502', 'plain HTTP to an unregistered host: 502 block_all');
  const tunnel = await curl(['-p', '-x', proxy, `http://localhost:${port}/x`]);
  t.not(tunnel.code, 0, 'CONNECT to an unregistered host fails');
  t.match(tunnel.stderr, /403/, 'with 403: ' + tunnel.stderr);

  const lines = (await audit()).filter((a) => a['destination'] === 'localhost');
  t.equal(lines.length, 2, 'one audit line each');
  for (const a of lines) {
    t.equal(a['decision'], 'deny', 'decision deny');
    t.equal(a['reason'], 'not_in_registry', 'reason: in no ServiceEntry');
    t.equal(a['port'], port, 'the requested port');
    t.match(a['source'], /^127\.0\.0\.1:\d+$/, 'the caller: its source address (no SPIFFE id without mTLS)');
  }
  t.same(lines.map((a) => a['method']).sort(), ['CONNECT', 'GET'], 'the request and the CONNECT');
  t.equal(rt.stat('egress_policy.denied.host.localhost'), 2, 'per-host denial counter');
  t.equal(rt.stat('egress_policy.denied'), 2, 'total denials');
  t.equal(rt.stat('egress_policy.would_deny'), 0, 'nothing would-denied in enforce mode');
  t.match(renderPrometheus(rt.rt.stats).toString(), /^envoy_egress_policy_host_denied\{host="localhost"\} 2$/m, 'in /stats/prometheus with the host as a label');

  const ok = await curl(['-x', proxy, `http://reg.example/`]);
  t.equal(ok.stdout, 'hello reg.example', 'a registered host still goes through');
  const allowed = (await audit()).find((a) => a['destination'] === 'reg.example');
  t.equal(allowed?.['decision'], 'allow', 'and is audited as allowed');
  t.equal(allowed?.['reason'], null, 'with no reason');
});

t.test('report: the same traffic passes, audited would_deny with the reason', async (t) => {
  const port = await upstream(t);
  const { rt, proxy, audit } = await start(t, 'report', port);
  const plain = await curl(['-x', proxy, `http://localhost:${port}/x`]);
  t.equal(plain.stdout, `hello localhost:${port}`, 'plain HTTP reaches the unregistered host, as under ALLOW_ANY');
  const tunnel = await curl(['-p', '-x', proxy, `http://localhost:${port}/y`]);
  t.equal(tunnel.stdout, `hello localhost:${port}`, 'so does a CONNECT tunnel: ' + tunnel.stderr);

  // The tunnel's line is written when the proxy sees it close, just after curl exits.
  let lines: Audit[] = [];
  for (let i = 0; i < 100 && lines.length < 2; i++) {
    lines = (await audit()).filter((a) => a['destination'] === 'localhost');
    if (lines.length < 2) await new Promise((r) => setTimeout(r, 20));
  }
  t.equal(lines.length, 2, 'one audit line each (the request; the tunnel at close)');
  for (const a of lines) {
    t.equal(a['decision'], 'would_deny', 'decision would_deny');
    t.equal(a['reason'], 'not_in_registry', 'reason');
    t.equal(a['port'], port, 'port');
    t.match(a['source'], /^127\.0\.0\.1:\d+$/, 'caller');
    t.equal(a['cluster'], 'PassthroughCluster', 'it went where ALLOW_ANY sends it');
  }
  t.equal(rt.stat('egress_policy.would_deny.host.localhost'), 2, 'per-host would-deny counter');
  t.equal(rt.stat('egress_policy.denied'), 0, 'nothing denied');
});
