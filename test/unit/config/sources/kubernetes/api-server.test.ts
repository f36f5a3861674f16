// The test API server's responses, checked with the real kubectl: if kubectl can discover,
// create, get, patch (apply again), watch and delete through it, and reports its Status errors
// the way it reports a real server's, the shapes are the ones a real server sends (for these
// requests). Also list paging and 410 on a compacted continue token, read raw.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeCa, makeLeaf } from '../../../../e2e/harness/certs';
import { KubeApiServer } from '../../../../helpers/kube-api-server/server';
import { kubectl, writeKubeconfig } from '../../../../helpers/kube-api-server/kubectl';

const VS = (hosts: string): string => `apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [${hosts}]
  http: [{route: [{destination: {host: reviews}}]}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  clusterIP: 10.0.0.5
  ports: [{name: http, port: 80, targetPort: 9080}, {name: grpc, port: 81}]
`;

t.test('kubectl against the test API server (HTTPS, test CA, bearer token)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-kubectl-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // kubectl sends a bearer token over TLS only, as every real API server serves.
  const ca = await makeCa(path.join(dir, 'pki'), 'kube-test-ca');
  const leaf = await makeLeaf(path.join(dir, 'pki'), ca, { cn: 'kube-apiserver', ips: ['127.0.0.1'] });
  const api = new KubeApiServer({ token: 'sesame', tls: { key: fs.readFileSync(leaf.keyFile), cert: fs.readFileSync(leaf.certFile) } });
  const server = await api.listen();
  t.teardown(() => api.close());
  const caPem = fs.readFileSync(ca.certFile, 'utf8');
  const kc = writeKubeconfig(dir, { server, token: 'sesame', caPem });
  const k = (args: string[], stdin?: string): Promise<string> => kubectl(kc, args, stdin);

  t.match(await k(['version']), /Server Version: v1\.32\.0-sluice-test/, '/version');
  t.match(await k(['api-resources', '--api-group', 'networking.istio.io', '--no-headers']), /virtualservices\s+vs\s+networking\.istio\.io\/v1\s+true\s+VirtualService/, 'discovery: v1 preferred, short names');
  t.equal(await k(['apply', '-f', '-'], VS('reviews')), 'virtualservice.networking.istio.io/reviews created\nservice/reviews created\n');
  t.equal(await k(['apply', '-f', '-'], VS('reviews')), 'virtualservice.networking.istio.io/reviews unchanged\nservice/reviews unchanged\n');
  t.equal(await k(['get', 'virtualservices.v1alpha3.networking.istio.io', 'reviews', '-o', 'jsonpath={.apiVersion} {.spec.hosts}']), 'networking.istio.io/v1alpha3 ["reviews"]', 'one object, served in every version');

  // A watch streams the change kubectl makes next (patch of a custom resource: JSON merge patch).
  const watcher = spawn('kubectl', ['--kubeconfig', kc, '--cache-dir', path.join(dir, 'kube-cache'), 'get', 'vs', '-n', 'default', '--watch', '--output-watch-events', '-o', 'custom-columns=EVENT:.type,HOSTS:.object.spec.hosts', '--no-headers']);
  let watched = '';
  watcher.stdout.on('data', (c: Buffer) => (watched += c.toString()));
  t.teardown(() => watcher.kill());
  for (let i = 0; i < 200 && api.openWatches('virtualservices') === 0; i++) await sleep(25);
  t.equal(api.openWatches('virtualservices'), 1, 'kubectl --watch holds a watch open');
  t.equal(await k(['apply', '-f', '-'], VS('reviews, ratings')), 'virtualservice.networking.istio.io/reviews configured\nservice/reviews unchanged\n');
  // Strategic merge patch on a built-in kind: one port changed, the other kept.
  const changed = VS('reviews, ratings').replace('port: 80, targetPort: 9080', 'port: 8080, targetPort: 9080');
  t.equal(await k(['apply', '-f', '-'], changed), 'virtualservice.networking.istio.io/reviews unchanged\nservice/reviews configured\n');
  t.equal(await k(['get', 'svc', 'reviews', '-o', 'jsonpath={.spec.ports[*].port}']), '8080 81');
  t.equal(await k(['delete', 'vs', 'reviews']), 'virtualservice.networking.istio.io "reviews" deleted\n');
  for (let i = 0; i < 200 && !watched.includes('DELETED'); i++) await sleep(25);
  t.match(watched.replace(/ +/g, ' '), /ADDED \[reviews\]\nMODIFIED \[reviews ratings\]\nDELETED \[reviews ratings\]/, 'ADDED, MODIFIED, DELETED as kubectl prints them');

  // Status errors, as kubectl reports a real server's.
  await t.rejects(k(['get', 'vs', 'nope']), /Error from server \(NotFound\): virtualservices\.networking\.istio\.io "nope" not found/);
  await t.rejects(k(['create', '-f', '-'], VS('x').split('---')[1]!.replace('10.0.0.5', '10.0.0.6')), /Error from server \(AlreadyExists\): .*services "reviews" already exists/);
  api.forbid('destinationrules');
  await t.rejects(k(['get', 'dr', '-A']), /Error from server \(Forbidden\): destinationrules\.networking\.istio\.io is forbidden: User ".*" cannot list resource "destinationrules" in API group "networking\.istio\.io" at the cluster scope/);
  const anonymous = writeKubeconfig(fs.mkdtempSync(path.join(dir, 'anon-')), { server, caPem });
  await t.rejects(kubectl(anonymous, ['get', 'svc']), /Unauthorized|must be logged in/, '401 without the token');
});

t.test('list paging, resourceVersion and 410 for a compacted continue token (raw)', async (t) => {
  const api = new KubeApiServer();
  const server = await api.listen();
  t.teardown(() => api.close());
  for (let i = 0; i < 5; i++) api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}`, namespace: 'default' }, spec: {} });
  const get = async (p: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const r = await fetch(server + p);
    return { status: r.status, body: await r.json() as Record<string, unknown> };
  };
  const first = await get('/api/v1/services?limit=2');
  const md = first.body['metadata'] as { resourceVersion: string; continue: string; remainingItemCount: number };
  t.same((first.body['items'] as { metadata: { name: string } }[]).map((i) => i.metadata.name), ['s0', 's1']);
  t.equal(md.remainingItemCount, 3);
  t.equal(first.body['kind'], 'ServiceList');
  t.notOk('kind' in (first.body['items'] as object[])[0]!, 'items of a built-in list carry no kind, as a real server');
  const second = await get(`/api/v1/services?limit=2&continue=${md.continue}`);
  t.same((second.body['items'] as { metadata: { name: string } }[]).map((i) => i.metadata.name), ['s2', 's3']);
  t.equal((second.body['metadata'] as { resourceVersion: string }).resourceVersion, md.resourceVersion, 'a continued list keeps its resourceVersion');
  api.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', namespace: 'default' } });
  api.store.compact();
  const gone = await get(`/api/v1/services?limit=2&continue=${(second.body['metadata'] as { continue: string }).continue}`);
  t.equal(gone.status, 410);
  t.match(gone.body, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410 });
  // A watch from a compacted version: HTTP 200, then one ERROR event with the 410 Status.
  const w = await fetch(`${server}/api/v1/services?watch=true&resourceVersion=${md.resourceVersion}`);
  t.equal(w.status, 200);
  const event = JSON.parse((await w.text()).trim()) as { type: string; object: { code: number; reason: string } };
  t.match(event, { type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
});
