// A gateway started as `sluice run --config kubernetes --kubeconfig F`
// against the test API server (test/helpers/kube-api-server), all driven with the real kubectl:
//   (a) routes a request to a Kubernetes Service that exists only as Service + EndpointSlice
//       (a not-ready endpoint gets nothing);
//   (b) applies a watched MODIFIED VirtualService without restarting;
//   (c) survives a dropped watch (resumes from its resourceVersion) and a 410 Gone (re-lists);
//   (d) ignores an AuthorizationPolicy in the stream with one warning;
// and a bad VirtualService is reported by its API path and field and skipped, the rest applies.
// The gateway is a real child process; upstreams are real HTTP servers on loopback. Waits poll
// with generous bounds; nothing asserts a duration.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../../../helpers/gateway';
import { KubeApiServer } from '../../../../helpers/kube-api-server/server';
import { kubectl, writeKubeconfig } from '../../../../helpers/kube-api-server/kubectl';

const CLI = path.resolve(__dirname, '../../../../../proxy/cli.js');

function upstream(t: Test, host: string, body: string): Promise<number> {
  const server = http.createServer((_req, res) => res.end(body));
  t.teardown(() => server.close());
  return new Promise((r) => server.listen(0, host, () => r((server.address() as { port: number }).port)));
}

function get(port: number, reqPath = '/'): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: reqPath, headers: { host: 'anything.example' }, agent: false }, (r) => {
      let body = '';
      r.on('data', (c: Buffer) => (body += c.toString()));
      r.on('end', () => resolve(`${r.statusCode} ${body}`));
    });
    req.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code}`));
    req.setTimeout(5000, () => req.destroy());
  });
}

async function until(what: string, ok: () => Promise<boolean> | boolean, bound = 20_000): Promise<void> {
  const end = Date.now() + bound;
  while (Date.now() < end) {
    if (await ok()) return;
    await sleep(50);
  }
  throw new Error(`timed out after ${bound} ms waiting for ${what}`);
}

const service = (name: string, ip: string): string => `
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec:
  clusterIP: ${ip}
  ports: [{name: http-web, port: 80, targetPort: 8080}]
`;

const slice = (svc: string, endpoints: string, port: number): string => `
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${svc}-abcde, namespace: default, labels: {kubernetes.io/service-name: ${svc}}}
addressType: IPv4
ports: [{name: http-web, port: ${port}, protocol: TCP}]
endpoints: ${endpoints}
`;

const virtualService = (routes: string): string => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: egress-routes, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: [egress]
  http:
${routes}
`;

t.test('a gateway configured from the API server', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-kube-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const api = new KubeApiServer();
  const server = await api.listen();
  t.teardown(() => api.close());
  const kubeconfig = writeKubeconfig(dir, { server });
  const k = (args: string[], stdin?: string): Promise<string> => kubectl(kubeconfig, args, stdin);

  const webPort = await upstream(t, '127.0.0.1', 'web');
  const apiPort = await upstream(t, '127.0.0.1', 'api');
  const gwPort = await freePort();

  // Endpoints of one slice share its port: the not-ready one listens on 127.0.0.2 at that port too.
  const notReady = http.createServer((_q, r) => r.end('not-ready'));
  await new Promise<void>((r) => notReady.listen(webPort, '127.0.0.2', r));
  t.teardown(() => notReady.close());

  const applied = await k(['apply', '-f', '-'], [
    `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers: [{port: {number: ${gwPort}, name: http, protocol: HTTP}, hosts: ["*"]}]`,
    service('web', '10.96.0.10'),
    slice('web', `[{addresses: [127.0.0.1], conditions: {ready: true}, targetRef: {kind: Pod, name: web-1, namespace: default}}, {addresses: [127.0.0.2], conditions: {ready: false}}]`, webPort),
    service('api', '10.96.0.11'),
    slice('api', '[{addresses: [127.0.0.1]}]', apiPort),
    virtualService('  - route: [{destination: {host: web.default.svc.cluster.local, port: {number: 80}}}]'),
  ].join('\n---\n'));
  t.match(applied, /gateway\.networking\.istio\.io\/egress created/);
  t.match(applied, /endpointslice\.discovery\.k8s\.io\/web-abcde created/);

  const child = spawn(process.execPath, [CLI, 'run', '--role', 'gateway', '--config', 'kubernetes', '--kubeconfig', kubeconfig,
    '--namespace', 'istio-system', '--labels', 'istio=egressgateway', '--admin', '127.0.0.1:0', '--prometheus-port', 'off',
    '--health-port', 'off', '--access-log', 'off', '--concurrency', '1'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBECONFIG: '' } });
  let log = '';
  child.stdout.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr.on('data', (c: Buffer) => (log += c.toString()));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const logLines = (): { msg?: string; level?: number; code?: string }[] => log.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg?: string });

  await t.test('(a) routes to a Service that exists only as Service + EndpointSlice', async (t) => {
    await until('the gateway to route', async () => (await get(gwPort)) === '200 web').catch((e) => { t.comment(log); throw e; });
    const answers = await Promise.all(Array.from({ length: 20 }, () => get(gwPort)));
    t.same([...new Set(answers)], ['200 web'], 'every request reached the ready endpoint; the not-ready one got none');
    t.match(log, /kubernetes config source synced/);
  });

  await t.test('(b) a MODIFIED VirtualService applies without a restart', async (t) => {
    const before = api.requests.length;
    const out = await k(['apply', '-f', '-'], virtualService('  - route: [{destination: {host: api.default.svc.cluster.local, port: {number: 80}}}]'));
    t.match(out, /virtualservice\.networking\.istio\.io\/egress-routes configured/);
    const started = Date.now();
    await until('the modified VirtualService to apply', async () => (await get(gwPort)) === '200 api');
    t.comment(`applied ${Date.now() - started} ms after kubectl returned`);
    t.equal(child.exitCode, null, 'same process, still running');
    t.notOk(api.requests.slice(before).some((r) => r.startsWith('GET /apis/networking.istio.io/v1/virtualservices?limit')), 'no re-list: the change came by the watch');
  });

  await t.test('(c) survives a dropped watch and a 410 Gone', async (t) => {
    // Bookmarks move the client's resourceVersion on even when nothing it watches changes.
    api.bookmark();
    await sleep(200);
    const bookmarked = String(api.store.resourceVersion);
    let mark = api.requests.length;
    api.dropWatches();
    await until('the watches to come back', () => api.openWatches('virtualservices') === 1 && api.openWatches('services') === 1);
    const rewatch = api.requests.slice(mark).filter((r) => r.includes('/virtualservices?'));
    t.equal(rewatch.length, 1, 'one new request for virtualservices: a watch, no list');
    t.match(rewatch[0], /watch=true/);
    t.match(rewatch[0], /allowWatchBookmarks=true/);
    t.match(rewatch[0], new RegExp(`resourceVersion=${bookmarked}(&|$)`), 'resumed from the bookmark\'s resourceVersion');
    await k(['apply', '-f', '-'], virtualService('  - route: [{destination: {host: web.default.svc.cluster.local, port: {number: 80}}}]'));
    await until('the change after the dropped watch', async () => (await get(gwPort)) === '200 web');

    // A write the gateway does not watch moves the server on; then the history up to it is compacted
    // away, so the gateway's resourceVersion is too old to resume from.
    api.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'unrelated', namespace: 'default' } });
    api.store.compact();
    mark = api.requests.length;
    api.dropWatches();
    await until('the watches to come back after 410', () => api.openWatches('virtualservices') === 1);
    const after = api.requests.slice(mark).filter((r) => r.includes('/virtualservices?'));
    t.ok(after.some((r) => r.includes('watch=true') && !r.includes('resourceVersion=&')), 'first tried to resume');
    t.ok(after.some((r) => /virtualservices\?limit=/.test(r)), 'then re-listed after the 410');
    await k(['apply', '-f', '-'], virtualService('  - route: [{destination: {host: api.default.svc.cluster.local, port: {number: 80}}}]'));
    await until('the change after the 410', async () => (await get(gwPort)) === '200 api');
    t.equal(child.exitCode, null);
  });

  await t.test('(d) an AuthorizationPolicy is ignored, with one warning', async (t) => {
    const out = await k(['apply', '-f', '-'], 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-all, namespace: istio-system}\nspec: {}\n');
    t.match(out, /authorizationpolicy\.security\.istio\.io\/deny-all created/);
    // A stream that carries one (an aggregated or misbehaving server): dropped, warned about once.
    const ap = (name: string): object => ({ type: 'ADDED', object: { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'istio-system', resourceVersion: String(api.store.resourceVersion) }, spec: {} } });
    api.injectEvent('virtualservices', ap('one'));
    api.injectEvent('virtualservices', ap('two'));
    await until('the warning', () => logLines().some((l) => l.msg?.includes('AuthorizationPolicy') === true)).catch((e) => { t.comment(log); throw e; });
    await sleep(300);
    const warnings = logLines().filter((l) => l.msg?.includes('AuthorizationPolicy') === true);
    t.equal(warnings.length, 1, 'one warning for the kind');
    t.equal(warnings[0]!.code, 'CFG_WARN_IGNORED_KIND');
    t.equal(await get(gwPort), '200 api', 'still routing as before');
  });

  await t.test('a bad VirtualService is reported by path and field and skipped; the rest applies', async (t) => {
    await k(['apply', '-f', '-'], `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: default}
spec:
  hosts: [broken.example]
  http: [{route: [{destination: {host: web.default.svc.cluster.local}, weight: "heavy"}]}]
`);
    await k(['apply', '-f', '-'], virtualService('  - route: [{destination: {host: web.default.svc.cluster.local, port: {number: 80}}}]'));
    await until('the good change next to the bad object', async () => (await get(gwPort)) === '200 web');
    const reported = logLines().filter((l) => l.msg?.startsWith('apis/networking.istio.io/v1/namespaces/default/virtualservices/broken:1: VirtualService/broken: spec.http[0].route[0].weight') === true);
    t.ok(reported.length > 0, 'reported with its API path, kind/name and field');
    t.match(reported[0]?.msg, /this object is skipped/);
    t.notOk(logLines().some((l) => l.msg === 'config rejected; keeping the last good config'), 'the config was not rejected as a whole');
    t.equal((await k(['delete', 'vs', 'broken', '-n', 'default'])).trim(), 'virtualservice.networking.istio.io "broken" deleted');
  });
});
