// Seed scenarios S3 (TLS origination at the egress gateway) and S4 (HTTPS passthrough) on real
// kernels: the app's curl is captured by iptables, the sidecar and the gateway run the seed's YAML,
// and the external stand-in serves HTTPS with a certificate from a CA this test made.

import t from 'tap';
import { requireRoot } from './harness/prereqs';
import { buildEgressMesh, externalConnections, startGateway, startSidecar, stat } from './egress-mesh';
import { sampleCopy } from './tls-mesh';

function statusLines(headers: string): string[] {
  return headers.split(/\r?\n/).filter((l) => l.startsWith('HTTP/'));
}

t.test('S3 before the gateway config: 301, then curl exit 35 (TLS spoken to a port declared plain HTTP)', async (t) => {
  if (!(await requireRoot(t))) return;
  const mesh = await buildEgressMesh(t, { forwarding: true });
  // Only the S3 ServiceEntry: 443 is declared HTTP, so the sidecar parses the app's ClientHello as HTTP.
  await startSidecar(mesh, sampleCopy(mesh, 's3', { only: ['service-entry.yaml'] }));
  const r = await mesh.topo.exec('app', ['curl', '-sL', '-o', '/dev/null', '-D', '-', '--max-time', '10', '--cacert', mesh.ca.certFile, 'http://edition.cnn.com/politics'], { timeoutMs: 15_000 });
  t.match(statusLines(r.stdout), [/^HTTP\/1\.1 301/], 'the seed output: first a 301 to https');
  t.equal(statusLines(r.stdout).length, 1, 'and no second response');
  t.equal(r.code, 35, `then curl exit 35, a TLS connect error (stderr: ${r.stderr})`);
  t.equal(externalConnections(mesh, /scheme=https$/).size, 0, 'no HTTPS request reached the external host');
});

t.test('S3 with the gateway config: 200 directly, TLS originated by the gateway to :443', async (t) => {
  if (!(await requireRoot(t))) return;
  const mesh = await buildEgressMesh(t, { forwarding: false });
  // The seed trusts edition.cnn.com through system roots; here the test CA is named in the DR instead.
  const cfg = sampleCopy(mesh, 's3', {
    edit: (f, text) => f === 'virtual-service.yaml' ? text.replace(/mode: SIMPLE.*\n/, `mode: SIMPLE\n        caCertificates: ${mesh.ca.certFile}\n`) : text,
  });
  // One worker each: the reuse checks below are about one keep-alive pool (each worker has its own).
  const gateway = await startGateway(mesh, cfg, ['--concurrency', '1']);
  const sidecar = await startSidecar(mesh, cfg, ['--concurrency', '1']);
  for (let i = 1; i <= 2; i++) {
    const r = await mesh.topo.exec('app', ['curl', '-sL', '-o', '/dev/null', '-D', '-', '--max-time', '10', 'http://edition.cnn.com/politics'], { timeoutMs: 15_000 });
    t.equal(r.code, 0, `curl exit code (stderr: ${r.stderr})`);
    t.match(statusLines(r.stdout), [/^HTTP\/1\.1 200/], `request ${i}: 200 directly`);
    t.equal(statusLines(r.stdout).length, 1, `request ${i}: no redirect`);
  }
  const line = await gateway.waitForLine(/"GET \/politics HTTP\/1\.1" 200 /, 5_000);
  t.match(line, /"edition\.cnn\.com" "198\.18\.2\.10:443" outbound\|443\|\|edition\.cnn\.com /, 'gateway log shows the upstream ...:443 and the 443 cluster');
  await sidecar.waitForLine(/"GET \/politics HTTP\/1\.1" 200 .*"198\.18\.1\.1:443" outbound\|443\|cnn\|istio-egressgateway/, 5_000);
  const https = [...externalConnections(mesh, /^GET \/politics .*scheme=https$/)].map((c) => c.split(':')[0]);
  t.ok(https.length >= 1 && https.every((ip) => ip === '198.18.2.1'), 'HTTPS reached the external host from the gateway only');
  t.equal(https.length, 1, 'on one reused connection');
  t.equal(await stat(mesh, 'gateway', 'cluster.outbound|443||edition.cnn.com.ssl.handshake'), 1, 'one TLS handshake: the pooled connection was reused');
  t.equal(await stat(mesh, 'gateway', 'cluster.outbound|443||edition.cnn.com.upstream_rq_total'), 2, 'both requests went over it');
});

t.test('S4 passthrough: curl https -> 200; the gateway counts exactly one upstream connection per request', async (t) => {
  if (!(await requireRoot(t))) return;
  const mesh = await buildEgressMesh(t, { forwarding: false });
  const gateway = await startGateway(mesh, sampleCopy(mesh, 's4'));
  await startSidecar(mesh, sampleCopy(mesh, 's4'));
  t.equal(await stat(mesh, 'gateway', 'cluster.outbound|443||edition.cnn.com.upstream_cx_total'), 0, 'no upstream connection before the first request');
  for (let i = 1; i <= 3; i++) {
    const r = await mesh.topo.exec('app', ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', '--cacert', mesh.ca.certFile, 'https://edition.cnn.com/politics'], { timeoutMs: 15_000 });
    t.equal(r.stdout, '200', `request ${i}: 200 (curl exit ${r.code}, ${r.stderr})`);
    t.equal(await stat(mesh, 'gateway', 'cluster.outbound|443||edition.cnn.com.upstream_cx_total'), i, `gateway upstream_cx_total is ${i} after request ${i}`);
  }
  t.same([...externalConnections(mesh, /scheme=https$/)].map((c) => c.split(':')[0]), ['198.18.2.1', '198.18.2.1', '198.18.2.1'], 'three TLS connections from the gateway host (the app\'s own TLS, passed through)');
  t.equal(await stat(mesh, 'gateway', 'cluster.outbound|443||edition.cnn.com.ssl.handshake'), 0, 'the gateway did not terminate or originate TLS');
  await gateway.waitForLine(/"- - -" 0 - .*"198\.18\.2\.10:443" outbound\|443\|\|edition\.cnn\.com .* edition\.cnn\.com /, 5_000);
});
