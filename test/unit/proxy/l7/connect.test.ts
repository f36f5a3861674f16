// CONNECT on the sidecar's explicit proxy port, driven by real curl (`-p -x`, a tunnel to an https
// URL): a host a ServiceEntry declares is reached through the tunnel, with TLS end to end between
// curl and a real TLS server on loopback (certificate from a CA this test makes with openssl);
// under REGISTRY_ONLY an unregistered host is refused with 403 before any tunnel exists, logged in
// the access log and the audit log with the host named; under ALLOW_ANY it would pass through.

import fs from 'node:fs';
import https from 'node:https';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { curl } from '../../../helpers/curl';
import { decideConnect } from '../../../../proxy/l7/connect';
import { makeCa, makeLeaf, type CertFiles } from '../../../e2e/harness/certs';
import { startTestRuntime } from '../../../helpers/gateway';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-connect-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
let ca: CertFiles;
let leaf: CertFiles;
t.before(async () => {
  ca = await makeCa(dir, 'ca');
  leaf = await makeLeaf(dir, ca, { cn: 'reg.example', dnsNames: ['reg.example'], name: 'reg' });
});

function config(tlsPort: number): string {
  return `
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: { name: reg, namespace: default }
spec:
  hosts: [reg.example]
  ports: [{ number: 443, name: tls, protocol: TLS }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { tls: ${tlsPort} } }]
`;
}

async function tlsUpstream(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const server = https.createServer({ cert: fs.readFileSync(leaf.certFile), key: fs.readFileSync(leaf.keyFile) }, (req, res) => {
    res.end('secret via ' + req.headers.host);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  }));
  return (server.address() as net.AddressInfo).port;
}

t.test('curl -p -x reaches a registered TLS host and is refused (403, logged) for an unregistered one', async (t) => {
  const tlsPort = await tlsUpstream(t);
  const auditFile = path.join(dir, 'audit.log');
  const rt = await startTestRuntime(t, config(tlsPort), {
    role: 'sidecar', labels: { app: 'sleep' }, namespace: 'default', httpProxyPort: 0,
    outboundPolicy: 'REGISTRY_ONLY', auditLog: { path: auditFile },
  });
  const proxy = `http://127.0.0.1:${rt.rt.httpProxyPort}`;

  const ok = await curl(['-p', '-x', proxy, '--cacert', ca.certFile, 'https://reg.example/hello']);
  t.equal(ok.code, 0, 'curl succeeded: ' + ok.stderr);
  t.equal(ok.stdout, 'secret via reg.example', 'TLS end to end through the tunnel, certificate verified against the test CA');

  const refused = await curl(['-p', '-x', proxy, '--cacert', ca.certFile, 'https://unreg.example/']);
  t.not(refused.code, 0, 'curl failed for the unregistered host');
  t.match(refused.stderr, /403/, 'the proxy answered 403: ' + refused.stderr);

  await rt.rt.flushAccessLog();
  const lines = await rt.lines();
  t.ok(lines.some((l) => /"CONNECT - HTTP\/1\.1" 403 NR connect_host_not_in_registry .*"unreg\.example:443"/.test(l)), 'the refusal is logged, naming the host: ' + lines.join('\n'));
  t.ok(lines.some((l) => /outbound\|443\|\|reg\.example .* reg\.example/.test(l)), 'the tunnel is logged as a TLS connection to the registered cluster with its SNI');
  const audit = fs.readFileSync(auditFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.ok(audit.some((a) => a['destination'] === 'unreg.example' && a['response_code'] === 403), 'audit line names the refused host');
  t.ok(audit.some((a) => a['destination'] === 'reg.example' && a['cluster'] === 'outbound|443||reg.example'), 'and the allowed one');
  t.equal(rt.stat('cluster.outbound|443||reg.example.upstream_cx_total'), 1, 'one upstream connection on the L4 path');

  const bad = await curl(['-p', '-x', proxy, 'https://reg.example:0/']);
  t.not(bad.code, 0, 'a bad authority fails');
});

t.test('the decision: registry hosts by SNI, catch-all by policy', async (t) => {
  const rt = await startTestRuntime(t, config(1), { role: 'sidecar', labels: { app: 'sleep' }, namespace: 'default', outboundPolicy: 'ALLOW_ANY' });
  const snap = rt.rt.snapshot!;
  t.equal(decideConnect(snap, 'reg.example', 443, '127.0.0.1').kind, 'tcp', 'registered TLS host: its TCP/TLS chain');
  t.same(decideConnect(snap, 'other.example', 443, '127.0.0.1'), { kind: 'catch-all', cluster: 'PassthroughCluster' }, 'ALLOW_ANY: passthrough');
  t.same(decideConnect(snap, 'other.example', 8443, '127.0.0.1'), { kind: 'catch-all', cluster: 'PassthroughCluster' }, 'a port no listener has: passthrough');
});
