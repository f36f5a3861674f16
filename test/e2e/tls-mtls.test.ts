import fs from 'node:fs';
// Seed scenarios S2m, S4 with mutual TLS and S6 on real kernels: the sidecar originates ISTIO_MUTUAL
// to the egress gateway with its workload certificate (--certs), the gateway terminates MUTUAL with its
// own, both issued by one mesh CA. A client without a valid workload certificate, going straight at
// the gateway from the app host (as UID 1337, which the capture rules leave alone), is refused.

import path from 'node:path';
import t from 'tap';
import { makeCa, makeWorkloadCerts } from './harness/certs';
import { PROXY_UID, requireRoot } from './harness/prereqs';
import { run } from './harness/run';
import { buildEgressMesh, externalConnections, startGateway, startSidecar, stat, type EgressMesh } from './egress-mesh';
import { curlBypassingSidecar, makeMeshIdentities, sampleCopy, SIDECAR_SPIFFE, type MeshIdentities } from './tls-mesh';

function statusLines(headers: string): string[] {
  return headers.split(/\r?\n/).filter((l) => l.startsWith('HTTP/'));
}

async function startPair(mesh: EgressMesh, ids: MeshIdentities, name: string, gatewayArgs: string[] = []) {
  const cfg = sampleCopy(mesh, name, { certsDir: ids.gateway.dir });
  const gateway = await startGateway(mesh, cfg, ['--certs', ids.gateway.dir, ...gatewayArgs]);
  const sidecar = await startSidecar(mesh, cfg, ['--certs', ids.sidecar.dir]);
  return { gateway, sidecar };
}

t.test('S2m: HTTP over ISTIO_MUTUAL to the gateway; clients without a mesh certificate are refused', async (t) => {
  if (!(await requireRoot(t))) return;
  const mesh = await buildEgressMesh(t, { forwarding: true });
  const ids = await makeMeshIdentities(mesh);
  const auditDir = path.join(mesh.dir, 'audit');
  fs.mkdirSync(auditDir);
  fs.chmodSync(auditDir, 0o777); // the gateway runs as uid 1337
  const auditFile = path.join(auditDir, 'audit.log');
  const { gateway, sidecar } = await startPair(mesh, ids, 's2m', ['--audit-log', auditFile, '--concurrency', '1']);

  const r = await mesh.topo.exec('app', ['curl', '-sL', '-o', '/dev/null', '-D', '-', '--max-time', '10', '--cacert', mesh.ca.certFile, 'http://edition.cnn.com/politics'], { timeoutMs: 15_000 });
  t.equal(r.code, 0, `curl exit code (stderr: ${r.stderr})`);
  t.match(statusLines(r.stdout), [/^HTTP\/1\.1 301/, /^HTTP\/1\.1 200/], 'same responses as S2');
  t.same([...externalConnections(mesh, /^GET \/politics .*scheme=http$/)].map((c) => c.split(':')[0]), ['198.18.2.1'], 'the HTTP request left from the gateway');
  const line = await gateway.waitForLine(/"GET \/politics HTTP\/1\.1" 301 /, 5_000);
  t.match(line, /"198\.18\.2\.10:80" outbound\|80\|\|edition\.cnn\.com .* edition\.cnn\.com /, 'gateway log: upstream, cluster, and the SNI the sidecar sent');
  await sidecar.waitForLine(/"GET \/politics HTTP\/1\.1" 301 .*"198\.18\.1\.1:80" outbound\|80\|cnn\|istio-egressgateway/, 5_000);
  t.equal(await stat(mesh, 'app', 'cluster.outbound|80|cnn|istio-egressgateway.istio-system.svc.cluster.local.ssl.handshake'), 1, 'sidecar: one mTLS handshake to the gateway');
  t.equal(await stat(mesh, 'gateway', 'listener.0.0.0.0_80.ssl.handshake'), 1, 'gateway: one terminated handshake');

  // Straight at the gateway, bypassing the sidecar. -k: the gateway's certificate names a SPIFFE id,
  // not edition.cnn.com; what is tested here is the gateway's check of the *client* certificate.
  const target = ['-k', '--resolve', 'edition.cnn.com:80:198.18.1.1', '-o', '/dev/null', '-w', '%{http_code}', 'https://edition.cnn.com:80/politics'];
  const noCert = await curlBypassingSidecar(mesh, target);
  t.not(noCert.code, 0, `no client certificate: refused (curl exit ${noCert.code}: ${noCert.stderr.trim()})`);
  t.not(noCert.stdout, '301', 'and no response');
  const rogueCa = await makeCa(path.join(mesh.dir, 'rogue'), 'rogue-ca');
  const rogue = await makeWorkloadCerts(path.join(mesh.dir, 'certs-rogue'), rogueCa, SIDECAR_SPIFFE);
  const badCert = await curlBypassingSidecar(mesh, ['--cert', rogue.certChainFile, '--key', rogue.keyFile, ...target]);
  t.not(badCert.code, 0, `a certificate from another CA: refused (curl exit ${badCert.code}: ${badCert.stderr.trim()})`);
  const good = await curlBypassingSidecar(mesh, ['--cert', ids.sidecar.certChainFile, '--key', ids.sidecar.keyFile, ...target]);
  t.equal(good.stdout, '301', `the same request with the mesh certificate is served (curl exit ${good.code} ${good.stderr})`);
  t.equal(await stat(mesh, 'gateway', 'listener.0.0.0.0_80.ssl.fail_verify_no_cert'), 1, 'gateway counted the missing certificate (ssl.fail_verify_no_cert)');
  t.equal(await stat(mesh, 'gateway', 'listener.0.0.0.0_80.ssl.fail_verify_error'), 1, 'and the untrusted one (ssl.fail_verify_error)');
  t.equal(await stat(mesh, 'gateway', 'listener.0.0.0.0_80.ssl.handshake'), 2, 'ssl.handshake counts only the two accepted clients (sidecar, curl with the mesh certificate)');
  t.equal(mesh.external.linesMatching(/^GET \/politics .*scheme=http$/).length, 2, 'only the two authenticated requests reached the external host');
  await gateway.waitForLine(/downstream TLS handshake failed/, 5_000);
  // DOWNSTREAM_PEER_URI_SAN: the audit log names the verified client identity as the source. The
  // writer is asynchronous: wait (bounded) for both lines.
  const audited = (): { source: string; response_code: number }[] => (fs.existsSync(auditFile) ? fs.readFileSync(auditFile, 'utf8') : '').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { source: string; response_code: number }).filter((a) => a.response_code === 301);
  for (let i = 0; i < 100 && audited().length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  t.same(audited().map((a) => a.source), [SIDECAR_SPIFFE, SIDECAR_SPIFFE], 'both authenticated requests are audited under the client\'s SPIFFE identity');
});

t.test('S4 with mTLS: the app\'s TLS inside the sidecar\'s ISTIO_MUTUAL; one upstream connection per request', async (t) => {
  if (!(await requireRoot(t))) return;
  const mesh = await buildEgressMesh(t, { forwarding: false });
  const ids = await makeMeshIdentities(mesh);
  const { gateway } = await startPair(mesh, ids, 's4m');
  for (let i = 1; i <= 3; i++) {
    const r = await mesh.topo.exec('app', ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', '--cacert', mesh.ca.certFile, 'https://edition.cnn.com/politics'], { timeoutMs: 15_000 });
    t.equal(r.stdout, '200', `request ${i}: 200 (curl exit ${r.code}, ${r.stderr})`);
    t.equal(await stat(mesh, 'gateway', 'cluster.outbound|443||edition.cnn.com.upstream_cx_total'), i, `gateway upstream_cx_total is ${i} after request ${i}`);
  }
  t.equal(await stat(mesh, 'gateway', 'listener.0.0.0.0_443.ssl.handshake'), 3, 'gateway terminated three mTLS connections from the sidecar');
  t.equal(await stat(mesh, 'app', 'cluster.outbound|443|cnn|istio-egressgateway.istio-system.svc.cluster.local.ssl.handshake'), 3, 'sidecar originated three');
  // Exact counts are in test/unit/proxy/upstream/connect.test.ts; here: resumption works across the
  // mesh hop at all (it did not before the gateway's contexts had a session id context).
  t.ok((await stat(mesh, 'app', 'cluster.outbound|443|cnn|istio-egressgateway.istio-system.svc.cluster.local.ssl.session_reused'))! >= 1, 'later connections resumed an earlier TLS session');
  t.same([...externalConnections(mesh, /scheme=https$/)].map((c) => c.split(':')[0]), ['198.18.2.1', '198.18.2.1', '198.18.2.1'], 'the app\'s TLS reached the external host from the gateway');
  await gateway.waitForLine(/"- - -" 0 - .*"198\.18\.2\.10:443" outbound\|443\|\|edition\.cnn\.com .* edition\.cnn\.com /, 5_000);

  // Straight at the gateway's 443 without a client certificate: the handshake is refused.
  const s = await mesh.topo.exec('app', ['openssl', 's_client', '-connect', '198.18.1.1:443', '-servername', 'edition.cnn.com', '-ign_eof'], { uid: PROXY_UID, timeoutMs: 10_000, input: 'GET /politics HTTP/1.1\r\nHost: edition.cnn.com\r\n\r\n' });
  t.match(s.stdout + s.stderr, /alert certificate required/, `openssl s_client without a certificate gets a TLS alert from the gateway (exit ${s.code}: ${s.stderr.trim().split('\n').slice(-2).join(' | ')})`);
  t.equal(externalConnections(mesh, /scheme=https$/).size, 3, 'and nothing reached the external host');
  t.equal(await stat(mesh, 'gateway', 'listener.0.0.0.0_443.ssl.fail_verify_no_cert'), 1, 'gateway counted ssl.fail_verify_no_cert');
  t.equal(await stat(mesh, 'gateway', 'listener.0.0.0.0_443.ssl.no_certificate'), 0, 'ssl.no_certificate counts successful handshakes without one: none here');
});

t.test('S6: openssl s_client from the app shows the external server\'s chain; the gateway presents its SPIFFE identity', async (t) => {
  if (!(await requireRoot(t))) return;
  const mesh = await buildEgressMesh(t, { forwarding: false });
  const ids = await makeMeshIdentities(mesh);
  await startPair(mesh, ids, 's6');
  const r = await mesh.topo.exec('app', ['openssl', 's_client', '-connect', 'edition.cnn.com:443', '-servername', 'edition.cnn.com', '-showcerts', '-CAfile', mesh.ca.certFile], { timeoutMs: 10_000, input: '' });
  const out = r.stdout + r.stderr;
  t.match(out, /subject=.*CN\s*=\s*edition\.cnn\.com/, 'the external server\'s certificate (CN=edition.cnn.com)');
  t.match(out, /issuer=.*CN\s*=\s*test-root/, 'issued by the test CA');
  t.match(out, /Verify return code: 0 \(ok\)/, 'verified end to end through both proxies');
  t.equal(await stat(mesh, 'gateway', 'cluster.outbound|443||edition.cnn.com.upstream_cx_total'), 1, 'the gateway counter went up');

  // The gateway's own certificate, seen by a mesh client: SAN = its SPIFFE identity (seed S6).
  const g = await mesh.topo.exec('app', ['openssl', 's_client', '-connect', '198.18.1.1:443', '-servername', 'edition.cnn.com', '-cert', ids.sidecar.certChainFile, '-key', ids.sidecar.keyFile, '-CAfile', ids.meshCa.certFile], { uid: PROXY_UID, timeoutMs: 10_000, input: '' });
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(g.stdout)?.[0] ?? '';
  const x = await run('openssl', ['x509', '-noout', '-ext', 'subjectAltName'], { input: pem });
  t.match(x.stdout, /URI:spiffe:\/\/cluster\.local\/ns\/istio-system\/sa\/istio-egressgateway-service-account/, 'gateway certificate SAN is its SPIFFE id');
});
