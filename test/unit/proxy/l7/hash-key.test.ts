// consistentHash on a header, cookie or query parameter: the same key always reaches the same
// upstream, through a real gateway to three real upstreams on loopback.

import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { hashValueFor } from '../../../../proxy/l7/hash-key';
import { freePort, startTestRuntime } from '../../../helpers/gateway';

const view = (path: string, headers: Record<string, string>) => ({ method: 'GET', path, scheme: 'http', authority: 'a', header: (n: string) => headers[n] });

t.test('the key comes from the header, cookie or query parameter the policy names', async (t) => {
  t.equal(hashValueFor({ kind: 'CONSISTENT_HASH', key: 'header', name: 'x-user' }, view('/', { 'x-user': 'ann' })), 'ann');
  t.equal(hashValueFor({ kind: 'CONSISTENT_HASH', key: 'cookie', name: 'sid' }, view('/', { cookie: 'a=1; sid=42; b=2' })), '42');
  t.equal(hashValueFor({ kind: 'CONSISTENT_HASH', key: 'queryParameter', name: 'u' }, view('/x?a=1&u=bob', {})), 'bob');
  t.equal(hashValueFor({ kind: 'CONSISTENT_HASH', key: 'header', name: 'x-user' }, view('/', {})), null, 'absent: no key');
  t.equal(hashValueFor({ kind: 'ROUND_ROBIN' }, view('/', { 'x-user': 'ann' })), null, 'other policies: nothing computed');
});

t.test('through a gateway: one key, one upstream; several keys, several upstreams', async (t) => {
  const ports: number[] = [];
  for (let i = 0; i < 3; i++) {
    const s = http.createServer((_req, res) => res.end(String(i)));
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    t.teardown(() => s.close());
    ports.push((s.address() as net.AddressInfo).port);
  }
  const gwPort = await freePort();
  await startTestRuntime(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: pool, namespace: default }
spec:
  hosts: [pool.example]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints:
${ports.map((p) => `  - { address: 127.0.0.1, ports: { http: ${p} } }`).join('\n')}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: pool, namespace: default }
spec:
  host: pool.example
  trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: X-User } } }
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  selector: { istio: egressgateway }
  servers: [{ port: { number: ${gwPort}, name: http, protocol: HTTP }, hosts: [pool.example] }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: vs, namespace: default }
spec:
  hosts: [pool.example]
  gateways: [gw]
  http: [{ route: [{ destination: { host: pool.example } }] }]
`);
  const which = (user: string): Promise<string> => new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: gwPort, path: '/', headers: { host: 'pool.example', 'x-user': user }, agent: false }, (res) => {
      let b = '';
      res.on('data', (c: Buffer) => (b += c));
      res.on('end', () => resolve(b));
    }).on('error', reject);
  });
  const seen = new Map<string, Set<string>>();
  for (let round = 0; round < 5; round++) {
    for (let u = 0; u < 12; u++) {
      const user = 'user-' + u;
      const up = await which(user);
      if (!seen.has(user)) seen.set(user, new Set());
      seen.get(user)!.add(up);
    }
  }
  for (const [user, ups] of seen) t.equal(ups.size, 1, `${user} always reaches the same upstream`);
  const used = new Set([...seen.values()].map((s) => [...s][0]));
  t.ok(used.size >= 2, `12 keys spread over ${used.size} of 3 upstreams`);
});
