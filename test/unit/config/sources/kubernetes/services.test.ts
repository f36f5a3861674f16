// Services + EndpointSlices -> mesh services, as Istio's Kubernetes registry makes them.
import t from 'tap';
import { MeshServices, meshServices, portProtocol, slimEndpointSlice, slimService } from '../../../../../config/sources/kubernetes/services';
import type { KubeObject } from '../../../../../config/sources/kubernetes/client';
import { CompileWorker } from '../../../../../config/sources/compile-worker';
import { compile } from '../../../../../config/compile/index';
import { loadObjects } from '../../../../../config/resources/load';

t.test('port protocol: UDP, then appProtocol, then the port name (whole or its prefix), else auto-detect', async (t) => {
  const cases: [object, string | undefined][] = [
    [{ name: 'http' }, 'HTTP'], [{ name: 'http-web' }, 'HTTP'], [{ name: 'HTTP2-x' }, 'HTTP2'], [{ name: 'https' }, 'HTTPS'],
    [{ name: 'grpc' }, 'GRPC'], [{ name: 'grpc-web' }, 'GRPC-WEB'], [{ name: 'tcp-db' }, 'TCP'], [{ name: 'tls-x' }, 'TLS'],
    [{ name: 'mongo' }, 'MONGO'], [{ name: 'redis-cache' }, 'REDIS'], [{ name: 'mysql' }, 'MYSQL'],
    [{ name: 'web' }, undefined], [{ name: 'httpx' }, undefined], [{}, undefined],
    [{ name: 'tcp', appProtocol: 'http' }, 'HTTP'], [{ name: 'x', appProtocol: 'kubernetes.io/h2c' }, 'HTTP2'],
    [{ name: 'x', appProtocol: 'kubernetes.io/ws' }, 'HTTP'], [{ name: 'x', appProtocol: 'kubernetes.io/wss' }, 'HTTPS'],
    [{ name: 'http', appProtocol: 'something/else' }, 'HTTP'],
    [{ name: 'http', protocol: 'UDP' }, 'UDP'],
  ];
  for (const [port, want] of cases) t.equal(portProtocol(port), want, JSON.stringify(port));
});

const svc = (name: string, spec: object, extra: object = {}): KubeObject => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'shop', resourceVersion: '1', managedFields: [{ big: 'x' }], ...extra }, spec });
const slice = (name: string, service: string, ports: object[], endpoints: object[], addressType = 'IPv4'): KubeObject => ({
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name, namespace: 'shop', labels: { 'kubernetes.io/service-name': service } }, addressType, ports, endpoints,
});

t.test('a Service with its slices is a MESH_INTERNAL STATIC ServiceEntry of NAME.NS.svc.cluster.local', async (t) => {
  const services = [
    svc('cart', { clusterIP: '10.96.0.7', clusterIPs: ['10.96.0.7'], ports: [{ name: 'http-api', port: 80, targetPort: 8080 }, { name: 'grpc', port: 9000, targetPort: 'grpc-port' }] },
      { annotations: { 'networking.istio.io/exportTo': '., istio-system', other: 'dropped' }, labels: { app: 'cart' } }),
    svc('db', { clusterIP: 'None', ports: [{ name: 'tcp', port: 5432 }] }),
    svc('ext', { type: 'ExternalName', externalName: 'db.example.com', ports: [{ name: 'tls', port: 443 }] }),
  ].map(slimService);
  const slices = [
    slice('cart-1', 'cart', [{ name: 'http-api', port: 8080 }, { name: 'grpc', port: 9001 }], [
      { addresses: ['10.1.0.1'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'cart-a', namespace: 'shop' } },
      { addresses: ['10.1.0.2'], conditions: { ready: false } },
      { addresses: ['10.1.0.3'] },
    ]),
    slice('cart-2', 'cart', [{ name: 'http-api', port: 8081 }], [{ addresses: ['10.1.0.4', '10.1.0.44'], conditions: { ready: null } }]),
    slice('cart-fqdn', 'cart', [], [{ addresses: ['x.example'] }], 'FQDN'),
    slice('db-1', 'db', [{ name: 'tcp', port: 5432 }], [{ addresses: ['10.1.1.1'] }]),
  ].map(slimEndpointSlice);
  t.notOk('managedFields' in (services[0]!.metadata ?? {}), 'the store keeps only what the translation reads');
  const out = meshServices({ services, endpointSlices: slices, podLabels: new Map([['shop/cart-a', { version: 'v1' }]]) });
  t.same(out.map((s) => s.spec.hosts), [['cart.shop.svc.cluster.local'], ['db.shop.svc.cluster.local'], ['ext.shop.svc.cluster.local']]);
  const cart = out[0]!;
  t.match(cart, { kind: 'ServiceEntry', metadata: { name: 'cart', namespace: 'shop', labels: { app: 'cart' } }, origin: { file: 'api/v1/namespaces/shop/services/cart', doc: 1 } });
  t.same(cart.spec.ports, [{ number: 80, name: 'http-api', protocol: 'HTTP', targetPort: 8080 }, { number: 9000, name: 'grpc', protocol: 'GRPC' }]);
  t.same(cart.spec.addresses, ['10.96.0.7']);
  t.equal(cart.spec.location, 'MESH_INTERNAL');
  t.equal(cart.spec.resolution, 'STATIC');
  t.same(cart.spec.exportTo, ['.', 'istio-system']);
  t.same(cart.spec.endpoints, [
    { address: '10.1.0.1', ports: { 'http-api': 8080, grpc: 9001 }, labels: { version: 'v1' } },
    { address: '10.1.0.3', ports: { 'http-api': 8080, grpc: 9001 } },
    { address: '10.1.0.4', ports: { 'http-api': 8081 } },
  ], 'not-ready left out, absent/null ready counts, first address, ports from the slice, pod labels, FQDN slices skipped');
  t.same(out[1]!.spec.addresses, [], 'headless: no address');
  t.same(out[1]!.spec.endpoints, [{ address: '10.1.1.1', ports: { tcp: 5432 } }]);
  t.match(out[2]!.spec, { resolution: 'DNS', location: 'MESH_EXTERNAL', endpoints: [{ address: 'db.example.com' }] });
});

t.test('translations are remembered: only a changed Service, slice or pod set is translated again', async (t) => {
  const cache = new MeshServices();
  const a = slimService(svc('a', { clusterIP: '10.96.0.1', ports: [{ name: 'http', port: 80 }] }));
  const b = slimService(svc('b', { clusterIP: '10.96.0.2', ports: [{ name: 'http', port: 80 }] }));
  const sa = slimEndpointSlice(slice('a-1', 'a', [{ name: 'http', port: 8080 }], [{ addresses: ['10.1.0.1'], targetRef: { kind: 'Pod', name: 'pa' } }]));
  const sb = slimEndpointSlice(slice('b-1', 'b', [{ name: 'http', port: 8080 }], [{ addresses: ['10.1.0.2'] }]));
  const pods = new Map([['shop/pa', { version: 'v1' }]]);
  const first = cache.build({ services: [b, a], endpointSlices: [sa, sb], podLabels: pods }, 1);
  t.same(first.map((s) => s.metadata.name), ['a', 'b'], 'namespace/name order');
  const again = cache.build({ services: [a, b], endpointSlices: [sb, sa], podLabels: pods }, 1);
  t.equal(again[0], first[0], 'same inputs: the same object');
  t.equal(again[1], first[1]);
  const b2 = slimService(svc('b', { clusterIP: '10.96.0.2', ports: [{ name: 'http', port: 81 }] }));
  const changed = cache.build({ services: [a, b2], endpointSlices: [sa, sb], podLabels: pods }, 1);
  t.equal(changed[0], first[0], 'a untouched');
  t.not(changed[1], first[1], 'b translated again');
  t.equal(changed[1]!.spec.ports![0]!.number, 81);
  const relabelled = cache.build({ services: [a, b2], endpointSlices: [sa, sb], podLabels: new Map([['shop/pa', { version: 'v2' }]]) }, 2);
  t.same(relabelled[0]!.spec.endpoints![0]!.labels, { version: 'v2' }, 'pods moved: a Service with pod endpoints is redone');
  t.equal(relabelled[1], changed[1], 'one without pod endpoints is not');
});

t.test('compiled off-thread from loaded resources, ServiceEntries sent as changes: same snapshots as in-thread', async (t) => {
  const worker = new CompileWorker();
  t.teardown(() => worker.close());
  const opts = { role: 'gateway' as const, namespace: 'istio-system', labels: {}, outboundPolicy: 'ALLOW_ANY' as const, certsDir: '/etc/certs' };
  const cache = new MeshServices();
  const mk = (name: string, port: number): KubeObject => slimService(svc(name, { clusterIP: '10.96.0.1', ports: [{ name: 'http', port }] }));
  let services = [mk('a', 80), mk('b', 80), mk('c', 80)];
  const check = async (what: string): Promise<void> => {
    const loaded = loadObjects([], { defaultNamespace: 'istio-system' }, cache.build({ services, endpointSlices: [], podLabels: new Map() }));
    const reply = await worker.runLoaded(loaded, { defaultNamespace: 'istio-system' }, opts);
    t.equal(reply.kind, 'built', what);
    const got = reply.kind === 'built' ? reply.snapshot : null;
    t.same(got === null ? null : [...got.clusters.keys()], [...compile(loaded.resources, opts).clusters.keys()], what);
  };
  await check('first: every entry sent');
  await check('the same objects again: none sent, all still there');
  services = [mk('a', 80), mk('b', 81)];
  await check('one changed, one gone');
});
