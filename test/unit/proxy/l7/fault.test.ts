// VirtualService `fault` through a real gateway on loopback: abort by HTTP status and by gRPC
// status (FI, fault_filter_abort, the upstream never sees the request), a fixed delay (DI, the
// request reaches the upstream no sooner than the delay), percentages, and a delay followed by an
// abort. Stats `http.<prefix>.fault.aborts_injected` / `delays_injected`.

import { performance } from 'node:perf_hooks';
import t from 'tap';
import { freePort, oneUpstreamConfig, startTestRuntime, type TestGateway } from '../../../helpers/gateway';
import { recordingUpstream, send } from '../../../helpers/recording-upstream';

const route = (fault: string, prefix: string): string => `  - match: [{ uri: { prefix: ${prefix} } }]
    fault: ${fault}
    route: [{ destination: { host: up.example, port: { number: 80 } } }]`;

function faultStat(gw: TestGateway, suffix: string): number {
  const s = gw.rt.stats.all().find((x) => x.name.startsWith('http.') && x.name.endsWith('.fault.' + suffix));
  return s === undefined || s.kind === 'histogram' ? 0 : s.value;
}

t.test('abort by HTTP status, by gRPC status, delay, percentages', async (t) => {
  const up = await recordingUpstream(t);
  const gwPort = await freePort();
  const http = [
    route('{ abort: { httpStatus: 418, percentage: { value: 100 } } }', '/teapot'),
    route('{ abort: { grpcStatus: UNAVAILABLE } }', '/grpc'),
    route('{ delay: { fixedDelay: 0.3s, percentage: { value: 100 } } }', '/slow'),
    route('{ delay: { fixedDelay: 0.2s }, abort: { httpStatus: 503 } }', '/both'),
    route('{ abort: { httpStatus: 500, percentage: { value: 0 } } }', '/never'),
    route('{ abort: { httpStatus: 429, percentage: { value: 50 } } }', '/half'),
  ].join('\n');
  const gw = await startTestRuntime(t, oneUpstreamConfig({ gwPort, upstreamPort: up.port, http }));

  const teapot = await send(gwPort, { path: '/teapot' });
  t.equal(teapot.status, 418);
  t.equal(teapot.body, 'fault filter abort', "Envoy's body");
  t.equal(up.seen.length, 0, 'an aborted request never reaches the upstream');

  const grpc = await send(gwPort, { path: '/grpc', method: 'POST', headers: { 'content-type': 'application/grpc' }, body: 'x' });
  t.equal(grpc.status, 200, 'a gRPC abort is an HTTP 200');
  t.equal(grpc.headers['grpc-status'], '14', 'UNAVAILABLE');
  t.equal(grpc.headers['content-type'], 'application/grpc');
  t.equal(up.seen.length, 0);

  const t0 = performance.now();
  const slow = await send(gwPort, { path: '/slow' });
  const took = performance.now() - t0;
  t.equal(slow.status, 200, 'a delayed request is then forwarded');
  t.ok(took >= 290, `the response came after the 0.3 s delay (${Math.round(took)} ms)`);
  t.same(up.seen.map((r) => r.url), ['/slow']);

  const t1 = performance.now();
  const both = await send(gwPort, { path: '/both' });
  t.equal(both.status, 503, 'delay, then abort');
  t.ok(performance.now() - t1 >= 190, 'the abort came after the delay');

  const never = await send(gwPort, { path: '/never' });
  t.equal(never.status, 200, 'percentage 0: never aborted');

  const statuses: number[] = [];
  for (let i = 0; i < 40; i++) statuses.push((await send(gwPort, { path: '/half' })).status);
  const aborted = statuses.filter((s) => s === 429).length;
  t.ok(aborted > 0 && aborted < 40, `50%: some aborted, some forwarded (${aborted}/40 aborted)`);
  t.ok(statuses.every((s) => s === 429 || s === 200));

  t.equal(faultStat(gw, 'aborts_injected'), 3 + aborted, 'aborts_injected');
  t.equal(faultStat(gw, 'delays_injected'), 2, 'delays_injected');

  const lines = await gw.lines();
  t.match(lines.find((l) => l.includes('/teapot')), /"GET \/teapot HTTP\/1\.1" 418 FI fault_filter_abort /, 'FI logged');
  t.match(lines.find((l) => l.includes('/slow')), /"GET \/slow HTTP\/1\.1" 200 DI via_upstream /, 'DI logged');
  t.match(lines.find((l) => l.includes('/both')), /"GET \/both HTTP\/1\.1" 503 DI,FI fault_filter_abort /, 'both flags');
});

t.test('a client that leaves during a delay is logged DC and never forwarded', async (t) => {
  const up = await recordingUpstream(t);
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, oneUpstreamConfig({ gwPort, upstreamPort: up.port, http: route('{ delay: { fixedDelay: 0.5s } }', '/') }));
  const net = await import('node:net');
  const c = net.connect(gwPort, '127.0.0.1');
  await new Promise<void>((r) => c.once('connect', () => r()));
  c.write('GET /gone HTTP/1.1\r\nhost: up.example\r\n\r\n');
  await new Promise((r) => setTimeout(r, 50));
  c.resetAndDestroy();
  await new Promise((r) => setTimeout(r, 700));
  t.equal(up.seen.length, 0, 'the upstream never saw it');
  const lines = await gw.lines();
  t.match(lines[0], /"GET \/gone HTTP\/1\.1" 0 DI,DC downstream_remote_disconnect /);
});
