// The Kubernetes source on its own (in-process, against the test API server): discovery's version
// fallback, a cluster without Istio, --watch-namespaces, Pods watched once subsets need endpoint
// labels, and a refused first list failing the start at once.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LoadResult } from '../../../../../config/resources/load';
import { fromKubeconfig } from '../../../../../config/sources/kubernetes/kubeconfig';
import { KubernetesSource } from '../../../../../config/sources/kubernetes/source';
import { defaultResourceTypes } from '../../../../helpers/kube-api-server/resources';
import { KubeApiServer } from '../../../../helpers/kube-api-server/server';
import { writeKubeconfig } from '../../../../helpers/kube-api-server/kubectl';

const FAST = { debounceMs: 10, maxDelayMs: 50, backoffBaseMs: 5, backoffMaxMs: 20, syncTimeoutMs: 5000 };

async function setup(t: Test, api: KubeApiServer, namespaces: string[] | null = null) {
  const server = await api.listen();
  t.teardown(() => api.close());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-kube-source-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const warnings: string[] = [];
  const changes: LoadResult[] = [];
  const source = new KubernetesSource({
    access: fromKubeconfig(writeKubeconfig(dir, { server })), namespaces, load: { defaultNamespace: 'istio-system' },
    log: { info: () => undefined, warn: (_o, m) => warnings.push(m) }, onChange: (r) => changes.push(r), timing: FAST,
  });
  t.teardown(() => source.close());
  return { source, warnings, changes };
}

const vs = (name: string, namespace: string): object => ({ apiVersion: 'networking.istio.io/v1alpha3', kind: 'VirtualService', metadata: { name, namespace }, spec: { hosts: [`${name}.example`], http: [{ route: [{ destination: { host: `${name}.example` } }] }] } });

t.test('discovery falls back to the version the server serves; namespaces restrict every watch', async (t) => {
  const api = new KubeApiServer({ types: defaultResourceTypes(['v1alpha3']) });
  const { source } = await setup(t, api, ['a']);
  api.put(vs('in-a', 'a') as never);
  api.put(vs('in-b', 'b') as never);
  api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'b' }, spec: { ports: [{ name: 'http', port: 80 }] } });
  const r = await source.load();
  t.same(r.resources.virtualServices.map((v) => `${v.metadata.namespace}/${v.metadata.name} ${v.apiVersion}`), ['a/in-a networking.istio.io/v1alpha3']);
  t.same(r.resources.serviceEntries, [], 'the Service of namespace b is not read');
  const paths = api.requests.filter((q) => q.includes('limit=')).map((q) => q.split('?')[0]);
  t.same(paths.sort(), [
    'GET /api/v1/namespaces/a/services', 'GET /apis/discovery.k8s.io/v1/namespaces/a/endpointslices',
    'GET /apis/networking.istio.io/v1alpha3/namespaces/a/destinationrules', 'GET /apis/networking.istio.io/v1alpha3/namespaces/a/gateways',
    'GET /apis/networking.istio.io/v1alpha3/namespaces/a/serviceentries', 'GET /apis/networking.istio.io/v1alpha3/namespaces/a/virtualservices',
  ]);
});

t.test('no Istio CRDs: Services only, with a warning', async (t) => {
  const api = new KubeApiServer({ types: defaultResourceTypes([]) });
  const { source, warnings } = await setup(t, api);
  api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { clusterIP: '10.96.0.9', ports: [{ name: 'http', port: 80 }] } });
  const r = await source.load();
  t.same(r.resources.serviceEntries.map((s) => s.spec.hosts[0]), ['web.default.svc.cluster.local']);
  t.match(warnings, [/serves no networking\.istio\.io kinds/]);
});

t.test('pods are watched once a DestinationRule has subsets; their labels reach the endpoints', async (t) => {
  const api = new KubeApiServer();
  const { source, changes } = await setup(t, api);
  api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: 'default' }, spec: { clusterIP: '10.96.0.9', ports: [{ name: 'http', port: 80 }] } });
  api.put({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'reviews-x', namespace: 'default', labels: { 'kubernetes.io/service-name': 'reviews' } }, addressType: 'IPv4', ports: [{ name: 'http', port: 9080 }], endpoints: [{ addresses: ['10.1.0.1'], targetRef: { kind: 'Pod', name: 'reviews-v1-abc', namespace: 'default' } }, { addresses: ['10.1.0.2'], targetRef: { kind: 'Pod', name: 'reviews-v2-def', namespace: 'default' } }] });
  api.put({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'reviews-v1-abc', namespace: 'default', labels: { app: 'reviews', version: 'v1' } }, spec: { containers: [] } });
  api.put({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'reviews-v2-def', namespace: 'default', labels: { app: 'reviews', version: 'v2' } }, spec: { containers: [] } });
  const first = await source.load();
  t.notOk(api.requests.some((q) => q.includes('/pods')), 'no DestinationRule with subsets: no Pod watch');
  t.same(first.resources.serviceEntries[0]!.spec.endpoints!.map((e) => e.labels ?? {}), [{}, {}]);
  source.start();
  api.put({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'reviews', namespace: 'default' }, spec: { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] } });
  const labelled = (): boolean => changes.some((c) => c.resources.serviceEntries[0]?.spec.endpoints?.[0]?.labels?.['version'] === 'v1');
  for (let i = 0; i < 200 && !labelled(); i++) await sleep(25);
  t.ok(api.requests.some((q) => q.startsWith('GET /api/v1/pods?limit=')), 'Pods listed');
  t.same(changes.at(-1)!.resources.serviceEntries[0]!.spec.endpoints!.map((e) => e.labels), [{ app: 'reviews', version: 'v1' }, { app: 'reviews', version: 'v2' }]);
});

t.test('a refused first list (403) fails the start at once, naming the resource', async (t) => {
  const api = new KubeApiServer();
  api.forbid('endpointslices');
  const { source } = await setup(t, api);
  await t.rejects(source.load(), { code: 'CFG_ERR_KUBE_API', status: 403, message: /endpointslices\.discovery\.k8s\.io is forbidden/ });
});
