// Seed scenarios S1, S2 and S5 on real kernels: the app's plain curl is caught by
// iptables REDIRECT, the sidecar (UID 1337, SO_ORIGINAL_DST) routes it by the seed's Istio YAML,
// through the egress gateway when the config says so, to the external stand-in.

import t from 'tap';
import { requireRoot } from './harness/prereqs';
import { admin, buildEgressMesh, externalConnections, sample, startGateway, startSidecar, stat } from './egress-mesh';

const CURL_FOLLOW = ['curl', '-sL', '-o', '/dev/null', '-D', '-', '--max-time', '10'];

function statusLines(headers: string): string[] {
  return headers.split(/\r?\n/).filter((l) => l.startsWith('HTTP/'));
}

t.test('S1: a registered external host, straight from the sidecar: 301 then 200', async (t) => {
  if (!(await requireRoot(t))) return;
  const mesh = await buildEgressMesh(t, { forwarding: true });
  const sidecar = await startSidecar(mesh, sample('s1'));
  const r = await mesh.topo.exec('app', [...CURL_FOLLOW, '--cacert', mesh.ca.certFile, 'http://edition.cnn.com/politics'], { timeoutMs: 15_000 });
  t.equal(r.code, 0, `curl exit code (stderr: ${r.stderr})`);
  t.match(statusLines(r.stdout), [/^HTTP\/1\.1 301/, /^HTTP\/1\.1 200/], 'the seed output: 301 to https, then 200');

  const httpConns = externalConnections(mesh, /^GET \/politics .*scheme=http$/);
  const httpsConns = externalConnections(mesh, /^GET \/politics .*scheme=https$/);
  t.equal(httpConns.size, 1, 'one plain HTTP connection reached the external host');
  t.equal(httpsConns.size, 1, 'one HTTPS connection reached the external host');
  t.equal(await stat(mesh, 'app', 'cluster.outbound|80||edition.cnn.com.upstream_cx_total'), httpConns.size, 'sidecar counted each HTTP upstream connection');
  t.equal(await stat(mesh, 'app', 'cluster.outbound|443||edition.cnn.com.upstream_cx_total'), httpsConns.size, 'HTTPS went by SNI to the 443 cluster');
  await sidecar.waitForLine(/"GET \/politics HTTP\/1\.1" 301 .*outbound\|80\|\|edition\.cnn\.com/, 5_000);
  await sidecar.waitForLine(/"- - -" 0 .*"198\.18\.2\.10:443" outbound\|443\|\|edition\.cnn\.com .* edition\.cnn\.com/, 5_000);
});

t.test('S2: plain HTTP via the egress gateway, counted and logged on both proxies', async (t) => {
  if (!(await requireRoot(t))) return;
  const mesh = await buildEgressMesh(t, { forwarding: true });
  const gateway = await startGateway(mesh, sample('s2'));
  const sidecar = await startSidecar(mesh, sample('s2'));
  const r = await mesh.topo.exec('app', [...CURL_FOLLOW, '--cacert', mesh.ca.certFile, 'http://edition.cnn.com/politics'], { timeoutMs: 15_000 });
  t.equal(r.code, 0, `curl exit code (stderr: ${r.stderr})`);
  t.match(statusLines(r.stdout), [/^HTTP\/1\.1 301/, /^HTTP\/1\.1 200/], 'same responses as S1');

  const httpConns = externalConnections(mesh, /^GET \/politics .*scheme=http$/);
  t.same([...httpConns].map((c) => c.split(':')[0]), ['198.18.2.1'], 'the HTTP request left from the gateway host, not the app');
  t.equal(await stat(mesh, 'gateway', 'cluster.outbound|80||edition.cnn.com.upstream_cx_total'), httpConns.size, 'gateway: one upstream connection per connection the external host saw');
  const gatewayDownstream = await stat(mesh, 'gateway', 'listener.0.0.0.0_80.downstream_cx_total');
  t.equal(gatewayDownstream, 1, 'the gateway accepted one connection from the sidecar');
  t.equal(await stat(mesh, 'app', 'cluster.outbound|80|cnn|istio-egressgateway.istio-system.svc.cluster.local.upstream_cx_total'), gatewayDownstream, 'sidecar: one upstream connection per connection the gateway accepted');
  const line = await gateway.waitForLine(/"GET \/politics HTTP\/1\.1" 301/, 5_000);
  t.match(line, /"edition\.cnn\.com" "198\.18\.2\.10:80"/, 'gateway access log names the Host and the upstream address');
  t.match(line, /"198\.18\.1\.2"/, 'X-Forwarded-For carries the app host');
  t.match(line, /outbound\|80\|\|edition\.cnn\.com/, 'and the cluster');
  await sidecar.waitForLine(/"GET \/politics HTTP\/1\.1" 301 .*"198\.18\.1\.1:80" outbound\|80\|cnn\|istio-egressgateway/, 5_000);
  // Only port 80 goes through the gateway in S2: HTTPS still leaves from the app host (seed 001).
  t.same([...externalConnections(mesh, /scheme=https$/)].map((c) => c.split(':')[0]), ['198.18.1.2'], 'HTTPS went direct, as in the seed');
  const clusters = await admin(mesh, 'gateway', '/clusters');
  t.match(clusters, /outbound\|80\|\|edition\.cnn\.com::198\.18\.2\.10:80::cx_total::1/, '/clusters shows the resolved endpoint');
});

t.test('S5: without a sidecar the app cannot get out; with one it can, via the gateway', async (t) => {
  if (!(await requireRoot(t))) return;
  const mesh = await buildEgressMesh(t, { forwarding: false });
  const direct = await mesh.topo.exec('app', ['curl', '-s', '-o', '/dev/null', '--connect-timeout', '2', 'http://edition.cnn.com/politics'], { timeoutMs: 10_000 });
  t.equal(direct.code, 28, 'no sidecar: the connection times out (curl exit 28), the gateway host does not route');
  t.equal(mesh.external.linesMatching(/^GET /).length, 0, 'nothing reached the external host');

  await startGateway(mesh, sample('s2'));
  await startSidecar(mesh, sample('s2'));
  for (let i = 1; i <= 2; i++) {
    const r = await mesh.topo.exec('app', ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', 'http://edition.cnn.com/politics'], { timeoutMs: 10_000 });
    t.equal(r.stdout, '301', `request ${i} through sidecar and gateway got the external host's 301`);
    t.equal(await stat(mesh, 'gateway', 'cluster.outbound|80||edition.cnn.com.upstream_rq_total'), i, `the gateway's request counter went up to ${i}`);
  }
  // (each gateway worker has its own pool, so there may be one upstream connection per worker)
  t.same([...new Set([...externalConnections(mesh, /^GET \/politics/)].map((c) => c.split(':')[0]))], ['198.18.2.1'], 'every request reached the external host from the gateway');
});
