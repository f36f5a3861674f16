// Kinds sluice does not act on, in files: ignored with one warning per kind, never an error, and a
// directory holding them starts a gateway that serves a real request ("a config
// directory with other Istio kinds starts"). A Gateway API Gateway is not an Istio Gateway.
import t from 'tap';
import * as fs from 'node:fs';
import http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadPaths } from '../../../../config/resources/load';
import { freePort, startTestRuntime } from '../../../helpers/gateway';
import { load } from './_load';

const ROOT = path.resolve(__dirname, '../../../../..');
const DIR = path.join(ROOT, 'test/fixtures/other-kinds');

t.test('other kinds load as one warning per kind; only the Istio kinds are read', async (t) => {
  const r = loadPaths([DIR], { defaultNamespace: 'default' });
  t.same(r.messages.filter((m) => m.level === 'error'), [], 'no errors');
  for (const m of r.messages) t.equal(m.code, 'CFG_WARN_IGNORED_KIND', m.text);
  const warned = r.messages.map((m) => /: \w+\/[^:]+: (\w+) \(/.exec(m.text)?.[1]);
  t.same(warned.sort(), ['Deployment', 'Gateway', 'HTTPRoute', 'PeerAuthentication', 'Service', 'Sidecar'],
    'each ignored kind once (two PeerAuthentications, one warning)');
  t.match(r.messages.find((m) => m.text.includes('gateway.networking.k8s.io'))?.text, /gateway-api\.yaml:1: Gateway\/egress: Gateway \(gateway\.networking\.k8s\.io\/v1\) ignored: a Gateway API Gateway/);
  t.same(r.resources.gateways.map((g) => `${g.apiVersion} ${g.metadata.namespace}/${g.metadata.name}`), ['networking.istio.io/v1 istio-system/egress'],
    'the Gateway API Gateway of the same name is not read as an Istio Gateway');
  t.equal(r.resources.serviceEntries.length, 1);
  t.equal(r.resources.virtualServices.length, 1);
  t.equal(r.resources.authorizationPolicies?.length, 1, 'AuthorizationPolicy is read (config/resources/authorization-policy.ts)');
});

t.test('one warning per kind and load, also inside a List; a non-string kind stays an error', async (t) => {
  const pa = (n: string): string => `- {apiVersion: security.istio.io/v1, kind: PeerAuthentication, metadata: {name: ${n}}, spec: {}}`;
  const r = load(`apiVersion: v1\nkind: List\nitems:\n${pa('a')}\n${pa('b')}\n`);
  t.equal(r.messages.length, 1);
  t.match(r.messages[0]!.text, /^f\.yaml:1: PeerAuthentication\/a: items\[0\]: PeerAuthentication \(security\.istio\.io\/v1\) ignored/);
  t.equal(r.messages[0]!.level, 'warning');
  const bad = load('apiVersion: v1\nkind: 7\nmetadata: {name: x}\n');
  t.same(bad.messages.map((m) => `${m.level} ${m.code}`), ['error CFG_ERR_UNKNOWN_KIND']);
  // An Istio kind with a wrong apiVersion is still read, so the mistake is an error, not a silent skip.
  const wrong = load('apiVersion: v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: [a], tcp: [{route: [{destination: {host: a}}]}]}\n');
  t.same(wrong.messages.map((m) => m.code), ['CFG_ERR_API_VERSION']);
});

t.test('a config directory with other kinds starts a gateway that routes', async (t) => {
  const upstream = http.createServer((_req, res) => res.end('from upstream'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => upstream.close());
  const upstreamPort = (upstream.address() as { port: number }).port;
  const gwPort = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-other-kinds-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const f of fs.readdirSync(DIR)) {
    const text = fs.readFileSync(path.join(DIR, f), 'utf8').replace('number: 8080', `number: ${gwPort}`).replace('{http: 80}', `{http: ${upstreamPort}}`);
    fs.writeFileSync(path.join(dir, f), text);
  }
  await startTestRuntime(t, '', { embeddedConfig: null, configPaths: [dir] });
  const body = await new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: gwPort, path: '/', headers: { host: 'upstream.example.com' }, agent: false }, (res) => {
      let b = '';
      res.on('data', (c: Buffer) => (b += c.toString()));
      res.on('end', () => resolve(`${res.statusCode} ${b}`));
    }).on('error', reject);
  });
  t.equal(body, '200 from upstream');
});
