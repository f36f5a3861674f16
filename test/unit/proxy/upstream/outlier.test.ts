// DestinationRule `outlierDetection` through a real gateway on loopback: a host answering 503
// is ejected after consecutive5xxErrors (shown in /clusters as `health_flags::/failed_outlier_check`,
// counted in outlier_detection.* stats), gets no traffic while ejected, returns after
// baseEjectionTime, and a second ejection lasts longer (base x ejections). A host that refuses
// connections is ejected for its connect failures (local-origin errors count as 5xx without
// splitExternalLocalOriginErrors); maxEjectionPercent keeps a host in (ejections_overflow).

import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import t from 'tap';
import { freePort, oneUpstreamConfig, startTestRuntime, type TestGateway } from '../../../helpers/gateway';
import { recordingUpstream, send } from '../../../helpers/recording-upstream';

const C = 'cluster.outbound|80||up.example.';

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

async function healthOf(gw: TestGateway, upPort: number): Promise<string> {
  const text = await getText(gw.rt.adminPort, '/clusters');
  const line = text.split('\n').find((l) => l.startsWith(`outbound|80||up.example::127.0.0.1:${upPort}::health_flags::`));
  return line?.split('::').pop() ?? 'missing';
}

/** Poll (bounded: 10 s) until the host shows `flag`; returns when it was first seen. */
async function untilHealth(gw: TestGateway, upPort: number, flag: string): Promise<number> {
  for (let i = 0; i < 1000; i++) {
    if ((await healthOf(gw, upPort)) === flag) return performance.now();
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`host ${upPort} never became ${flag}`);
}

function twoHosts(gwPort: number, a: number, b: number, outlier: string): string {
  return oneUpstreamConfig({ gwPort, upstreamPort: a, http: `  - route: [{ destination: { host: up.example, port: { number: 80 } } }]
    retries: { attempts: 0 }` }).replace(
    `endpoints: [{ address: 127.0.0.1, ports: { http: ${a} } }]`,
    `endpoints: [{ address: 127.0.0.1, ports: { http: ${a} } }, { address: 127.0.0.1, ports: { http: ${b} } }]`,
  ) + `---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: dr, namespace: default }
spec:
  host: up.example
  trafficPolicy:
    loadBalancer: { simple: ROUND_ROBIN }
    outlierDetection: ${outlier}
`;
}

t.test('a failing host is ejected, gets no traffic, returns, and is ejected longer the second time', async (t) => {
  let failing = true;
  const bad = await recordingUpstream(t, () => (failing ? { status: 503 } : {}));
  const good = await recordingUpstream(t);
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, twoHosts(gwPort, bad.port, good.port,
    '{ consecutive5xxErrors: 2, interval: 0.05s, baseEjectionTime: 0.6s, maxEjectionPercent: 50 }'));
  t.equal(await healthOf(gw, bad.port), 'healthy');

  // Round robin: the bad host gets every other request until its second 503.
  while (bad.seen.length < 2) await send(gwPort);
  const ejectedAt = await untilHealth(gw, bad.port, '/failed_outlier_check');
  t.equal(await healthOf(gw, good.port), 'healthy', 'the other host stays in');
  t.equal(gw.stat(C + 'outlier_detection.ejections_active'), 1);
  t.equal(gw.stat(C + 'outlier_detection.ejections_enforced_consecutive_5xx'), 1);
  t.equal(gw.stat(C + 'membership_healthy'), 1);

  const before = bad.seen.length;
  const during: number[] = [];
  for (let i = 0; i < 6; i++) during.push((await send(gwPort)).status);
  t.same(during, [200, 200, 200, 200, 200, 200], 'while ejected every request goes to the healthy host');
  t.equal(bad.seen.length, before, 'the ejected host got nothing');

  const back = await untilHealth(gw, bad.port, 'healthy');
  t.ok(back - ejectedAt >= 550, `back after baseEjectionTime (${Math.round(back - ejectedAt)} ms)`);
  t.equal(gw.stat(C + 'outlier_detection.ejections_active'), 0);

  // Ejected again at once: the second ejection lasts 2 x baseEjectionTime.
  const seenBefore = bad.seen.length;
  while (bad.seen.length < seenBefore + 2) await send(gwPort);
  const again = await untilHealth(gw, bad.port, '/failed_outlier_check');
  failing = false;
  const back2 = await untilHealth(gw, bad.port, 'healthy');
  t.ok(back2 - again >= 1150, `the second ejection lasted 2 x base (${Math.round(back2 - again)} ms)`);
  t.equal(gw.stat(C + 'outlier_detection.ejections_total'), 2);
  const after = bad.seen.length;
  for (let i = 0; i < 4; i++) t.equal((await send(gwPort)).status, 200);
  t.ok(bad.seen.length > after, 'the returned host serves again');
});

t.test('maxEjectionPercent keeps hosts in; connect failures eject too', async (t) => {
  const good = await recordingUpstream(t);
  const dead = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, twoHosts(gwPort, dead, good.port, '{ consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 50 }'));
  const first = await send(gwPort);
  const second = await send(gwPort);
  t.same([first.status, second.status].sort(), [200, 503], 'round robin met the dead host once');
  t.equal(await healthOf(gw, dead), '/failed_outlier_check', 'ejected for a connect failure');
  for (let i = 0; i < 4; i++) t.equal((await send(gwPort)).status, 200, 'the live host takes everything');
  t.equal(gw.stat(C + 'outlier_detection.ejections_enforced_consecutive_5xx'), 1);
});

t.test('maxEjectionPercent: the host that would pass the limit stays in (ejections_overflow)', async (t) => {
  const a = await recordingUpstream(t, () => ({ status: 503 }));
  const b = await recordingUpstream(t, () => ({ status: 503 }));
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, twoHosts(gwPort, a.port, b.port, '{ consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 50 }'));
  await send(gwPort);
  await send(gwPort);
  const flags = [await healthOf(gw, a.port), await healthOf(gw, b.port)].sort();
  t.same(flags, ['/failed_outlier_check', 'healthy'], 'one of two ejected: a second would be 100% > 50%');
  t.equal(gw.stat(C + 'outlier_detection.ejections_overflow'), 1);
  t.equal(gw.stat(C + 'outlier_detection.ejections_detected_consecutive_5xx'), 2, 'both detected, one enforced');
  t.equal(gw.stat(C + 'outlier_detection.ejections_enforced_consecutive_5xx'), 1);
});

t.test('minHealthPercent: below it the load balancer is in panic and uses ejected hosts too', async (t) => {
  const bad = await recordingUpstream(t, () => ({ status: 503 }));
  const good = await recordingUpstream(t);
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, twoHosts(gwPort, bad.port, good.port, '{ consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100, minHealthPercent: 60 }'));
  while (bad.seen.length < 1) await send(gwPort);
  t.equal(await healthOf(gw, bad.port), '/failed_outlier_check');
  const before = bad.seen.length;
  for (let i = 0; i < 6; i++) await send(gwPort);
  t.ok(bad.seen.length > before, '1 of 2 healthy is 50% < 60%: panic, the ejected host still gets requests');
});
