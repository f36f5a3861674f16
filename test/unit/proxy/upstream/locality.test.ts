// DestinationRule `localityLbSetting` through a real gateway on loopback, the gateway running with
// `--locality us-east/zone1`: with outlierDetection, every request goes to the same-locality
// endpoint while it is healthy and fails over to the `failover` region once it is ejected;
// `distribute` splits requests by locality weight; retryRemoteLocalities sends the retry to the
// other locality.

import http from 'node:http';
import t from 'tap';
import { freePort, oneUpstreamConfig, startTestRuntime } from '../../../helpers/gateway';
import { recordingUpstream, send, until } from '../../../helpers/recording-upstream';

function getText(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let b = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (b += c));
      res.on('end', () => resolve(b));
    }).on('error', reject);
  });
}

function config(gwPort: number, local: number, remote: number, far: number, lb: string, outlier: string, retries = '{ attempts: 0 }'): string {
  return oneUpstreamConfig({ gwPort, upstreamPort: local, http: `  - route: [{ destination: { host: up.example, port: { number: 80 } } }]
    retries: ${retries}` }).replace(
    `endpoints: [{ address: 127.0.0.1, ports: { http: ${local} } }]`,
    `endpoints:
  - { address: 127.0.0.1, ports: { http: ${local} }, locality: us-east/zone1 }
  - { address: 127.0.0.1, ports: { http: ${remote} }, locality: us-west/zone2 }
  - { address: 127.0.0.1, ports: { http: ${far} }, locality: eu-central/zone3 }`,
  ) + `---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: dr, namespace: default }
spec:
  host: up.example
  trafficPolicy:
    loadBalancer: ${lb}
${outlier === '' ? '' : `    outlierDetection: ${outlier}\n`}`;
}

t.test('failover: the local endpoint while healthy, then the failover region', async (t) => {
  let localFails = false;
  const local = await recordingUpstream(t, () => (localFails ? { status: 503 } : {}));
  const remote = await recordingUpstream(t);
  const far = await recordingUpstream(t);
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, config(gwPort, local.port, remote.port, far.port,
    '{ simple: ROUND_ROBIN, localityLbSetting: { enabled: true, failover: [{ from: us-east, to: us-west }] } }',
    '{ consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100 }'), { locality: 'us-east/zone1' });
  for (let i = 0; i < 10; i++) t.equal((await send(gwPort)).status, 200);
  t.same([local.seen.length, remote.seen.length, far.seen.length], [10, 0, 0], 'all to the same locality');
  const clusters = await getText(gw.rt.adminPort, '/clusters');
  const priorityOf = (port: number): string | undefined =>
    clusters.split('\n').find((l) => l.startsWith(`outbound|80||up.example::127.0.0.1:${port}::priority::`))?.split('::').pop();
  t.same([priorityOf(local.port), priorityOf(remote.port), priorityOf(far.port)], ['0', '1', '2'], '/clusters shows each endpoint\'s priority');

  localFails = true;
  t.equal((await send(gwPort)).status, 503, 'the local endpoint fails once and is ejected');
  await until(() => (gw.stat('cluster.outbound|80||up.example.outlier_detection.ejections_active') ?? 0) === 1, 'the ejection');
  for (let i = 0; i < 10; i++) t.equal((await send(gwPort)).status, 200);
  t.same([remote.seen.length, far.seen.length], [10, 0], 'failover goes to us-west, the failover target, not eu-central');
});

t.test('distribute: requests split by locality weight', async (t) => {
  const local = await recordingUpstream(t);
  const remote = await recordingUpstream(t);
  const far = await recordingUpstream(t);
  const gwPort = await freePort();
  await startTestRuntime(t, config(gwPort, local.port, remote.port, far.port,
    '{ simple: ROUND_ROBIN, localityLbSetting: { distribute: [{ from: "us-east/*", to: { "us-east/zone1": 80, "us-west/*": 20 } }] } }', ''), { locality: 'us-east/zone1' });
  for (let i = 0; i < 50; i++) t.equal((await send(gwPort)).status, 200);
  t.same([local.seen.length, remote.seen.length, far.seen.length], [40, 10, 0], '80/20 (weighted round robin is exact); eu-central is not listed: none');
});

t.test('retryRemoteLocalities: the retry goes to another locality', async (t) => {
  const local = await recordingUpstream(t, () => ({ status: 503, headers: { connection: 'close' } }));
  const remote = await recordingUpstream(t);
  const far = await recordingUpstream(t);
  const gwPort = await freePort();
  await startTestRuntime(t, config(gwPort, local.port, remote.port, far.port,
    '{ simple: ROUND_ROBIN, localityLbSetting: { failover: [{ from: us-east, to: us-west }] } }',
    '{ consecutive5xxErrors: 0 }', '{ attempts: 1, retryOn: 5xx, retryRemoteLocalities: true }'), { locality: 'us-east/zone1' });
  const r = await send(gwPort);
  t.equal(r.status, 200, 'the retry left the failing local endpoint');
  t.same([local.seen.length, remote.seen.length], [1, 1]);
});
