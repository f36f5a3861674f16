// AuthorizationPolicy on the egress gateway over the sidecar -> gateway ISTIO_MUTUAL of seed S2m, on
// real kernels: the app's curl goes through the capturing sidecar, which presents the workload
// identity spiffe://cluster.local/ns/default/sa/sleep; the gateway allows that identity to
// edition.cnn.com/politics only. A client with another mesh identity (.../sa/web, a certificate from
// the same mesh CA) going straight at the gateway is denied by name. Envoy's RBAC answers: 403
// `RBAC: access denied`, flag RBAC, the matched policy in the details, http.<prefix>.rbac.* stats.

import t from 'tap';
import path from 'node:path';
import { makeWorkloadCerts } from './harness/certs';
import { requireRoot } from './harness/prereqs';
import { buildEgressMesh, startGateway, startSidecar, stat } from './egress-mesh';
import { curlBypassingSidecar, makeMeshIdentities, sampleCopy } from './tls-mesh';

const POLICIES = `
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: sleep-to-cnn, namespace: istio-system }
spec:
  action: ALLOW
  rules:
  - from: [{ source: { principals: [cluster.local/ns/default/sa/sleep] } }]
    to: [{ operation: { hosts: [edition.cnn.com], paths: ["/politics*"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-web, namespace: istio-system }
spec:
  action: DENY
  rules:
  - from: [{ source: { principals: [cluster.local/ns/default/sa/web] } }]
`;

t.test('S2m + AuthorizationPolicy: sleep allowed to /politics, other paths and the web identity denied', async (t) => {
  if (!(await requireRoot(t))) return;
  const mesh = await buildEgressMesh(t, { forwarding: true });
  const ids = await makeMeshIdentities(mesh);
  const cfg = sampleCopy(mesh, 's2m', { certsDir: ids.gateway.dir, extra: POLICIES });
  const gateway = await startGateway(mesh, cfg, ['--certs', ids.gateway.dir, '--concurrency', '1']);
  await startSidecar(mesh, cfg, ['--certs', ids.sidecar.dir]);
  const viaSidecar = (p: string) => mesh.topo.exec('app', ['curl', '-s', '-o', '-', '-w', '\n%{http_code}', '--max-time', '10', `http://edition.cnn.com${p}`], { timeoutMs: 15_000 });

  const ok = await viaSidecar('/politics');
  t.match(ok.stdout, /\n301$/, 'sleep -> /politics: allowed (301 from the external host)');
  const other = await viaSidecar('/sports');
  t.equal(other.stdout, 'RBAC: access denied\n403', 'sleep -> /sports: no ALLOW rule matches, 403');
  await gateway.waitForLine(/"GET \/sports HTTP\/1\.1" 403 RBAC rbac_access_denied_matched_policy\[none\] /, 5_000);

  const web = await makeWorkloadCerts(path.join(mesh.dir, 'certs-web'), ids.meshCa, 'spiffe://cluster.local/ns/default/sa/web');
  const direct = await curlBypassingSidecar(mesh, ['-k', '--cert', web.certChainFile, '--key', web.keyFile, '--resolve', 'edition.cnn.com:80:198.18.1.1',
    '-o', '-', '-w', '\n%{http_code}', 'https://edition.cnn.com:80/politics']);
  t.equal(direct.stdout, 'RBAC: access denied\n403', `web identity (same mesh CA): denied (${direct.stderr})`);
  await gateway.waitForLine(/"GET \/politics HTTP\/2" 403 RBAC rbac_access_denied_matched_policy\[ns\[istio-system\]-policy\[no-web\]-rule\[0\]\] /, 5_000);

  t.equal(await stat(mesh, 'gateway', 'http.outbound_0.0.0.0_80.rbac.allowed'), 1, 'rbac.allowed');
  t.equal(await stat(mesh, 'gateway', 'http.outbound_0.0.0.0_80.rbac.denied'), 2, 'rbac.denied');
  t.equal(mesh.external.linesMatching(/^GET \/sports /).length, 0, 'the denied request never left the gateway');
});
