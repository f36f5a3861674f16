// The sidecar's outbound traffic policy for destinations no ServiceEntry declares
// (Istio's outboundTrafficPolicy): ALLOW_ANY passes them to their original destination (PassthroughCluster);
// REGISTRY_ONLY answers HTTP with 502 `block_all` and closes TCP/TLS (BlackHoleCluster, flag UH).
// Connections dialled to the capture port itself are black-holed, so the proxy cannot loop.

import t from 'tap';
import { requireRoot } from './harness/prereqs';
import { buildEgressMesh, sample, startSidecar, stat } from './egress-mesh';

t.test('ALLOW_ANY: unknown hosts go to their original destination', async (t) => {
  if (!(await requireRoot(t))) return;
  const mesh = await buildEgressMesh(t, { forwarding: true });
  const sidecar = await startSidecar(mesh, sample('s1'));
  const http = await mesh.topo.exec('app', ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', 'http://unknown.example/politics']);
  t.equal(http.stdout, '301', 'HTTP on a known port, unknown Host: passed through');
  await sidecar.waitForLine(/"GET \/politics HTTP\/1\.1" 301 .*"unknown\.example" "198\.18\.2\.10:80" PassthroughCluster .* allow_any$/, 5_000);
  const tls = await mesh.topo.exec('app', ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', '-k', 'https://unknown.example/politics']);
  t.equal(tls.stdout, '200', 'TLS with an unknown SNI on a TLS port: passed through');
  t.equal(await stat(mesh, 'app', 'cluster.PassthroughCluster.upstream_cx_total'), 2, 'both went to PassthroughCluster');
  const loop = await mesh.topo.exec('app', ['curl', '-s', '--max-time', '3', 'http://127.0.0.1:15001/']);
  t.not(loop.code, 0, 'a connection to the capture port itself gets no answer');
  await sidecar.waitForLine(/"- - -" 0 UH .* BlackHoleCluster .* 127\.0\.0\.1:15001 /, 5_000);
});

t.test('REGISTRY_ONLY: unknown HTTP gets 502 block_all, unknown TCP/TLS is closed (UH)', async (t) => {
  if (!(await requireRoot(t))) return;
  const mesh = await buildEgressMesh(t, { forwarding: true });
  const sidecar = await startSidecar(mesh, sample('s1'), ['--outbound-policy', 'REGISTRY_ONLY']);
  const known = await mesh.topo.exec('app', ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', 'http://edition.cnn.com/politics']);
  t.equal(known.stdout, '301', 'a registered host still works');
  const http = await mesh.topo.exec('app', ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', 'http://unknown.example/politics']);
  t.equal(http.stdout, '502', 'unknown Host on an HTTP port: 502');
  await sidecar.waitForLine(/"GET \/politics HTTP\/1\.1" 502 - direct_response .*"unknown\.example" "-" .* block_all$/, 5_000);
  const tls = await mesh.topo.exec('app', ['curl', '-s', '-o', '/dev/null', '--max-time', '5', '-k', 'https://unknown.example/politics']);
  t.equal(tls.code, 35, 'unknown SNI on a TLS port: the handshake never completes (curl exit 35)');
  const tcp = await mesh.topo.exec('app', ['nc', '-w', '2', '198.18.2.10', '8080'], { input: 'hello\n' });
  t.equal(tcp.stdout, '', 'a port no ServiceEntry declares: closed without a byte');
  await sidecar.waitForLine(/"- - -" 0 UH .* BlackHoleCluster .* 198\.18\.2\.10:8080 /, 5_000);
  t.equal(mesh.external.linesMatching(/host=unknown\.example/).length, 0, 'nothing unknown reached the external host');
});
