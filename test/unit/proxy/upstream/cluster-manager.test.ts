// A DNS server that never answers must not keep the proxy from starting: cluster warming is bounded,
// and until an answer arrives the cluster has no hosts (503 UH), as an Envoy DNS cluster that did not
// resolve. The "server" is a real UDP socket on loopback that reads queries and never replies.

import dgram from 'node:dgram';
import http from 'node:http';
import t from 'tap';
import { configureDns } from '../../../../proxy/upstream/dns';
import { freePort, startTestRuntime } from '../../../helpers/gateway';

t.test('boot with a silent DNS server: live after warming times out, DNS cluster answers 503 UH', async (t) => {
  const silent = dgram.createSocket('udp4');
  let queries = 0;
  silent.on('message', () => queries++);
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r));
  t.teardown(() => {
    silent.close();
    configureDns({});
  });
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: slow, namespace: default }
spec:
  hosts: [slow.example]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  selector: { istio: egressgateway }
  servers: [{ port: { number: ${gwPort}, name: http, protocol: HTTP }, hosts: [slow.example] }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: vs, namespace: default }
spec:
  hosts: [slow.example]
  gateways: [gw]
  http: [{ route: [{ destination: { host: slow.example } }] }]
`, { dnsServers: ['127.0.0.1:' + (silent.address().port)] });
  t.ok(queries > 0, 'the cluster asked the configured DNS server');
  const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: gwPort, path: '/', headers: { host: 'slow.example' }, agent: false }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (c: string) => (body += c));
      r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
    }).on('error', reject);
  });
  t.same(res, { status: 503, body: 'no healthy upstream' }, 'no hosts yet: 503 UH');
  t.match((await gw.lines()).join('\n'), / 503 UH no_healthy_upstream .*outbound\|80\|\|slow\.example/);
});
