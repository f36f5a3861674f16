// VirtualService `rewrite` and header operations through a real gateway on loopback: rewrite.uri
// after each match kind (prefix: the prefix replaced; exact: the whole path; regex: the whole
// path; no uri match: the leading `/`), uriRegexRewrite with capture groups, the query string kept,
// x-envoy-original-path; per-destination `headers` (route[].headers) for requests and responses,
// merged with the rule's; and x-envoy-upstream-service-time once, even behind another Envoy hop.

import t from 'tap';
import { freePort, oneUpstreamConfig, startTestRuntime } from '../../../helpers/gateway';
import { recordingUpstream, send } from '../../../helpers/recording-upstream';

const D = 'route: [{ destination: { host: up.example, port: { number: 80 } } }]';

t.test('rewrite.uri for every match kind, and uriRegexRewrite', async (t) => {
  const up = await recordingUpstream(t);
  const gwPort = await freePort();
  const http = `  - match: [{ uri: { prefix: /old } }]
    rewrite: { uri: /new }
    ${D}
  - match: [{ uri: { exact: /exact } }]
    rewrite: { uri: /replaced }
    ${D}
  - match: [{ uri: { regex: "/re/[0-9]+" } }]
    rewrite: { uri: /from-regex }
    ${D}
  - match: [{ uri: { prefix: /rx } }]
    rewrite: { uriRegexRewrite: { match: "^/rx/([^/]+)/(.*)$", rewrite: "/\\\\2/\\\\1" } }
    ${D}
  - match: [{ headers: { x-no-uri: { exact: "1" } } }]
    rewrite: { uri: /root/ }
    ${D}
  - ${D}`;
  await startTestRuntime(t, oneUpstreamConfig({ gwPort, upstreamPort: up.port, http }));
  const cases: [string, Record<string, string>, string][] = [
    ['/old/page?q=1', {}, '/new/page?q=1'],
    ['/exact', {}, '/replaced'],
    ['/exact?x=y', {}, '/replaced?x=y'],
    ['/re/42', {}, '/from-regex'],
    ['/rx/a/b/c', {}, '/b/c/a'],
    ['/some/path', { 'x-no-uri': '1' }, '/root/some/path'],
    ['/untouched', {}, '/untouched'],
  ];
  for (const [path, headers] of cases) t.equal((await send(gwPort, { path, headers })).status, 200, path);
  t.same(up.seen.map((r) => r.url), cases.map((c) => c[2]), 'each path as rewritten');
  t.equal(up.seen[0]!.headers['x-envoy-original-path'], '/old/page?q=1', 'x-envoy-original-path');
  t.equal(up.seen[6]!.headers['x-envoy-original-path'], undefined, 'not when the path is unchanged');
});

t.test('per-destination headers, merged with the rule\'s', async (t) => {
  const a = await recordingUpstream(t, () => ({ headers: { 'x-from': 'a', 'x-drop-me': '1' } }));
  const gwPort = await freePort();
  const http = `  - headers:
      request: { set: { x-rule: rule, x-both: rule }, add: { x-added: rule } }
      response: { set: { x-rule-resp: rule } }
    route:
    - destination: { host: up.example, port: { number: 80 } }
      headers:
        request: { set: { x-dest: dest, x-both: dest }, remove: [x-secret] }
        response: { set: { x-dest-resp: dest }, remove: [x-drop-me] }`;
  await startTestRuntime(t, oneUpstreamConfig({ gwPort, upstreamPort: a.port, http }));
  const r = await send(gwPort, { path: '/', headers: { 'x-secret': 'hidden' } });
  t.equal(r.status, 200);
  const seen = a.seen[0]!.headers;
  t.equal(seen['x-dest'], 'dest', 'the destination\'s request set');
  t.equal(seen['x-rule'], 'rule', 'the rule\'s request set');
  t.equal(seen['x-both'], 'rule', 'the rule wins where both set one name (Envoy: route level after weighted cluster level)');
  t.equal(seen['x-added'], 'rule');
  t.equal(seen['x-secret'], undefined, 'the destination\'s remove');
  t.equal(r.headers['x-dest-resp'], 'dest');
  t.equal(r.headers['x-rule-resp'], 'rule');
  t.equal(r.headers['x-drop-me'], undefined);
  t.equal(r.headers['x-from'], 'a');
});

t.test('x-envoy-upstream-service-time and x-envoy-attempt-count appear once across two hops', async (t) => {
  const up = await recordingUpstream(t);
  const gw2Port = await freePort();
  // The upstream already answers through an Envoy-like hop: the proxy must replace its header.
  const inner = await recordingUpstream(t, () => ({ headers: { 'x-envoy-upstream-service-time': '7' } }));
  await startTestRuntime(t, oneUpstreamConfig({ gwPort: gw2Port, upstreamPort: inner.port }));
  const r = await send(gw2Port, { path: '/', headers: { 'x-envoy-attempt-count': '1' } });
  const times = r.rawHeaders.filter((_, i) => i % 2 === 0 && r.rawHeaders[i]!.toLowerCase() === 'x-envoy-upstream-service-time');
  t.equal(times.length, 1, 'one x-envoy-upstream-service-time');
  t.not(r.headers['x-envoy-upstream-service-time'], '7', 'the proxy\'s own, not the previous hop\'s');
  const counts = inner.seen[0]!.rawHeaders.filter((h) => h.toLowerCase() === 'x-envoy-attempt-count');
  t.equal(counts.length, 1, 'one x-envoy-attempt-count upstream: the client\'s is replaced');
  t.equal(up.seen.length, 0);
});
