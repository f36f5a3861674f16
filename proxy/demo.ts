// `npm start` / `sluice demo`: the seed's S2 (plain HTTP through the egress gateway) on loopback,
// without root: an "edition.cnn.com" stand-in, a gateway and a sidecar, all in this process. The
// sidecar is addressed as an explicit HTTP proxy (there is no iptables capture without root); the
// routing is the seed's own Istio YAML, with the gateway Service and the external host declared by
// ServiceEntries pointing at loopback ports.

import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { Runtime, type RunOptions } from './runtime';
import { createLogger } from './observe/log';

/** A port that was free a moment ago (the demo binds it right after; a small race it can live with). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

export function demoConfig(externalPort: number, gatewayPort: number): string {
  return `# The seed's S2 resources (000/001: "direct-cnn-through-egress-gateway"), with the external host
# and the gateway Service given loopback endpoints so that everything runs on this machine.
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: cnn
spec:
  hosts:
  - edition.cnn.com
  ports:
  - number: 80
    name: http-port
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      http-port: ${externalPort}
---
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: istio-egressgateway
  namespace: istio-system
spec:
  hosts:
  - istio-egressgateway.istio-system.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      http: ${gatewayPort}
---
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: ${gatewayPort}
      name: http
      protocol: HTTP
    hosts:
    - edition.cnn.com
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: egressgateway-for-cnn
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: cnn
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: direct-cnn-through-egress-gateway
spec:
  hosts:
  - edition.cnn.com
  gateways:
  - istio-egressgateway
  - mesh
  http:
  - match:
    - gateways:
      - mesh
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: cnn
        port:
          number: 80
      weight: 100
  - match:
    - gateways:
      - istio-egressgateway
      port: ${gatewayPort}
    route:
    - destination:
        host: edition.cnn.com
        port:
          number: 80
      weight: 100
`;
}

function startExternal(): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.url === '/politics') {
      res.writeHead(301, { location: `https://${req.headers.host ?? 'edition.cnn.com'}/politics`, 'content-length': 0 });
      res.end();
      return;
    }
    res.writeHead(404, { 'content-length': 0 });
    res.end();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function getViaProxy(proxyPort: number, url: string): Promise<{ status: number; location: string | undefined }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request({ host: '127.0.0.1', port: proxyPort, path: url, headers: { host: u.host, 'user-agent': 'curl/8.0 (sluice demo)' }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location }));
    });
    req.on('error', reject);
    req.end();
  });
}

function getText(port: number, p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

export async function runDemo(once: boolean): Promise<number> {
  const out = (s: string): boolean => process.stdout.write(s + '\n');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-demo-'));
  const external = await startExternal();
  const externalPort = (external.address() as net.AddressInfo).port;
  const gatewayPort = await freePort();
  const text = demoConfig(externalPort, gatewayPort);
  fs.writeFileSync(path.join(dir, 'demo.yaml'), text);
  const logger = createLogger(process.env['SLUICE_LOG_LEVEL'] ?? 'warn');
  const common = {
    configPaths: [],
    embeddedConfig: { name: path.join(dir, 'demo.yaml'), text },
    admin: { host: '127.0.0.1', port: 0 },
    prometheusPort: null,
    healthPort: null,
    outboundPort: 15001,
    inboundPort: 15006,
    certsDir: '/etc/certs',
    outboundPolicy: 'ALLOW_ANY' as const,
    accessLogFormat: 'istio' as const,
    concurrency: 1,
    logger,
  };
  const gatewayOpts: RunOptions = { ...common, role: 'gateway', namespace: 'istio-system', labels: { istio: 'egressgateway' }, accessLog: path.join(dir, 'gateway-access.log'), httpProxyPort: null, capture: false };
  const sidecarOpts: RunOptions = { ...common, role: 'sidecar', namespace: 'default', labels: { app: 'sleep' }, accessLog: path.join(dir, 'sidecar-access.log'), httpProxyPort: 0, capture: false };
  const gateway = await Runtime.start(gatewayOpts);
  const sidecar = await Runtime.start(sidecarOpts);

  out(`sluice demo: the seed's S2 — app -> sidecar -> egress gateway -> edition.cnn.com (a stand-in on 127.0.0.1:${externalPort})`);
  out(`  config:  ${path.join(dir, 'demo.yaml')}`);
  out(`  sidecar: explicit HTTP proxy on 127.0.0.1:${sidecar.httpProxyPort}, admin http://127.0.0.1:${sidecar.adminPort}/`);
  out(`  gateway: listener 0.0.0.0:${gatewayPort}, admin http://127.0.0.1:${gateway.adminPort}/`);
  out('');
  for (let i = 0; i < 3; i++) {
    const r = await getViaProxy(sidecar.httpProxyPort, 'http://edition.cnn.com/politics');
    out(`GET http://edition.cnn.com/politics -> ${r.status}${r.location ? ' location: ' + r.location : ''}`);
  }
  await sidecar.flushAccessLog();
  await gateway.flushAccessLog();
  out('');
  out('gateway access log:');
  for (const l of fs.readFileSync(gatewayOpts.accessLog, 'utf8').trim().split('\n')) out('  ' + l);
  out('sidecar access log:');
  for (const l of fs.readFileSync(sidecarOpts.accessLog, 'utf8').trim().split('\n')) out('  ' + l);
  out('');
  out(`$ curl -s localhost:${gateway.adminPort}/stats | grep edition.cnn.com.upstream_cx_total`);
  out((await getText(gateway.adminPort, '/stats?filter=edition.cnn.com.upstream_cx_total')).trim());
  out(`$ curl -s localhost:${sidecar.adminPort}/stats | grep istio-egressgateway.istio-system.svc.cluster.local.upstream_cx_total`);
  out((await getText(sidecar.adminPort, '/stats?filter=istio-egressgateway.istio-system.svc.cluster.local.upstream_cx_total')).trim());

  const stopAll = async (): Promise<void> => {
    await sidecar.stop();
    await gateway.stop();
    external.close();
  };
  if (once) {
    await stopAll();
    return 0;
  }
  out('');
  out(`Try it: curl -x http://127.0.0.1:${sidecar.httpProxyPort} http://edition.cnn.com/politics   (Ctrl-C to stop)`);
  await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  await stopAll();
  return 0;
}
