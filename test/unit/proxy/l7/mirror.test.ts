// VirtualService `mirror` / `mirrorPercentage` / `mirrors` through a real gateway on loopback: the
// mirror upstream gets a copy (Host with Envoy's `-shadow` suffix, the body teed), the main
// response never waits for the mirror (a mirror that answers late or not at all changes nothing),
// percentage 0 mirrors nothing, and `mirrors` sends one copy per destination.

import t from 'tap';
import { freePort, oneUpstreamConfig, startTestRuntime } from '../../../helpers/gateway';
import { recordingUpstream, send, until } from '../../../helpers/recording-upstream';

function mirrorEntry(name: string, port: number): string {
  return `---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [${name}.example]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http: ${port} } }]
`;
}

const D = 'route: [{ destination: { host: up.example, port: { number: 80 } } }]';

t.test('mirror: a fire-and-forget shadow copy with the -shadow host', async (t) => {
  const up = await recordingUpstream(t);
  let release = (): void => undefined;
  const held = new Promise<void>((r) => (release = r));
  t.teardown(() => release());
  const shadow = await recordingUpstream(t, (req) => (req.url === '/slow' ? { hold: held } : {}));
  const other = await recordingUpstream(t);
  const gwPort = await freePort();
  const http = `  - match: [{ uri: { prefix: /none } }]
    mirror: { host: shadow.example, port: { number: 80 } }
    mirrorPercentage: { value: 0 }
    ${D}
  - match: [{ uri: { prefix: /two } }]
    mirrors:
    - destination: { host: shadow.example, port: { number: 80 } }
    - destination: { host: other.example, port: { number: 80 } }
      percentage: { value: 100 }
    ${D}
  - mirror: { host: shadow.example, port: { number: 80 } }
    ${D}`;
  const gw = await startTestRuntime(t, oneUpstreamConfig({ gwPort, upstreamPort: up.port, http }) + mirrorEntry('shadow', shadow.port) + mirrorEntry('other', other.port));

  const post = await send(gwPort, { method: 'POST', path: '/post', body: 'hello body' });
  t.equal(post.status, 200);
  await until(() => shadow.seen.length === 1, 'the shadow copy');
  const copy = shadow.seen[0]!;
  t.equal(copy.headers.host, 'up.example-shadow', 'Envoy\'s -shadow suffix');
  t.equal(copy.method, 'POST');
  t.equal(copy.url, '/post');
  t.equal(copy.body, 'hello body', 'the body is teed');
  t.equal(up.seen[0]!.headers.host, 'up.example', 'the main request keeps its host');

  // The mirror holds /slow unanswered until the end of the test: if the main exchange waited for
  // it, this request would not complete (bounded at 3 s so the failure is clear).
  const slow = await Promise.race([send(gwPort, { path: '/slow' }), new Promise<null>((r) => setTimeout(r, 3000, null))]);
  t.equal(slow?.status, 200, 'the main response came while the mirror still holds its copy');
  await until(() => shadow.seen.length === 2, 'the second shadow copy');

  await send(gwPort, { path: '/none' });
  await send(gwPort, { path: '/two' });
  await until(() => other.seen.length === 1 && shadow.seen.length === 3, 'one copy per mirrors[] entry');
  t.same(shadow.seen.map((r) => r.url), ['/post', '/slow', '/two'], 'percentage 0 mirrored nothing');
  t.equal(other.seen[0]!.headers.host, 'up.example-shadow');
  t.ok((gw.stat('cluster.outbound|80||shadow.example.upstream_rq_total') ?? 0) >= 3, 'the shadow counts in the mirror cluster');
  const lines = await gw.lines();
  t.equal(lines.length, 4, 'one access-log line per main request, none for shadows');
});

t.test('a large body reaches the mirror whole (the tee follows the shadow connection\'s backpressure)', async (t) => {
  const up = await recordingUpstream(t);
  const shadow = await recordingUpstream(t);
  const gwPort = await freePort();
  await startTestRuntime(t, oneUpstreamConfig({ gwPort, upstreamPort: up.port, http: `  - mirror: { host: shadow.example, port: { number: 80 } }
    ${D}` }) + mirrorEntry('shadow', shadow.port));
  const body = 'x'.repeat(3 << 20);
  t.equal((await send(gwPort, { method: 'POST', path: '/big', body })).status, 200);
  await until(() => shadow.seen.length === 1, 'the shadow copy');
  t.equal(up.seen[0]!.body.length, body.length, 'the main upstream got all of it');
  t.equal(shadow.seen[0]!.body.length, body.length, 'and so did the mirror');
});

t.test('a mirror that cannot be reached changes nothing for the main request', async (t) => {
  const up = await recordingUpstream(t);
  const gwPort = await freePort();
  const http = `  - mirror: { host: shadow.example, port: { number: 80 } }
    ${D}`;
  // port 1 on loopback: refused
  await startTestRuntime(t, oneUpstreamConfig({ gwPort, upstreamPort: up.port, http }) + mirrorEntry('shadow', 1));
  for (let i = 0; i < 3; i++) t.equal((await send(gwPort, { path: '/' + i })).status, 200);
  t.equal(up.seen.length, 3);
});
