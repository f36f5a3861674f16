// Upstreams that cannot be reached, on a gateway inside a network namespace whose resolver points at
// nothing (so an unknown name fails locally, never asking a real DNS server): a name DNS cannot
// resolve and a subset that selects no endpoint both give Envoy's 503 UH; the gateway keeps serving.

import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { requireRoot } from './harness/prereqs';
import { buildEgressMesh, startGateway, stat } from './egress-mesh';

const CONFIG = `
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: { name: unresolvable }
spec:
  hosts: [unresolvable.example]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: DNS
---
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: { name: cnn }
spec:
  hosts: [edition.cnn.com]
  ports: [{ number: 80, name: http-port, protocol: HTTP }]
  resolution: DNS
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: { name: cnn }
spec:
  host: edition.cnn.com
  subsets:
  - name: nothing
    labels: { version: none }
---
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: { name: istio-egressgateway }
spec:
  selector: { istio: egressgateway }
  servers:
  - port: { number: 80, name: http, protocol: HTTP }
    hosts: [unresolvable.example, edition.cnn.com]
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: { name: routes }
spec:
  hosts: [unresolvable.example, edition.cnn.com]
  gateways: [istio-egressgateway]
  http:
  - match: [{ authority: { exact: unresolvable.example } }]
    route: [{ destination: { host: unresolvable.example } }]
  - match: [{ uri: { prefix: /empty-subset } }]
    route: [{ destination: { host: edition.cnn.com, subset: nothing } }]
  - route: [{ destination: { host: edition.cnn.com } }]
`;

t.test('DNS failure and an empty subset give 503 UH; the gateway keeps serving', async (t) => {
  if (!(await requireRoot(t))) return;
  const mesh = await buildEgressMesh(t, { forwarding: false });
  const dir = path.join(mesh.dir, 'bad-upstreams');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'config.yaml'), CONFIG);
  fs.chmodSync(dir, 0o755);
  const gateway = await startGateway(mesh, dir);
  const curl = (host: string, p: string) => mesh.topo.exec('app', ['curl', '-s', '-w', '\\n%{http_code}', '--max-time', '5', '-H', `Host: ${host}`, `http://198.18.1.1${p}`]);

  const unresolved = await curl('unresolvable.example', '/x');
  t.equal(unresolved.stdout, 'no healthy upstream\n503', 'unresolvable name: 503 no healthy upstream');
  const empty = await curl('edition.cnn.com', '/empty-subset');
  t.equal(empty.stdout, 'no healthy upstream\n503', 'empty subset: 503 no healthy upstream');
  const ok = await curl('edition.cnn.com', '/politics');
  t.equal(ok.stdout, '\n301', 'the good route still works');

  await gateway.waitForLine(/"GET \/x HTTP\/1\.1" 503 UH no_healthy_upstream .*outbound\|80\|\|unresolvable\.example/, 5_000);
  await gateway.waitForLine(/"GET \/empty-subset HTTP\/1\.1" 503 UH no_healthy_upstream .*outbound\|80\|nothing\|edition\.cnn\.com/, 5_000);
  t.equal(await stat(mesh, 'gateway', 'cluster.outbound|80||unresolvable.example.upstream_cx_none_healthy'), 1, 'counted as upstream_cx_none_healthy');
});
