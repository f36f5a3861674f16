// The issue's own case: a sidecar configured from the API server reaches
// `istio-egressgateway.istio-system.svc.cluster.local` with no hand-written ServiceEntry, because
// the Kubernetes Service + EndpointSlice is a mesh service. A real `sluice run --role sidecar
// --config kubernetes` child; the request enters through its explicit HTTP proxy port (no
// capture: that needs root and a network namespace); the "egress gateway" is a loopback server.
import t from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../../../helpers/gateway';
import { KubeApiServer } from '../../../../helpers/kube-api-server/server';
import { writeKubeconfig } from '../../../../helpers/kube-api-server/kubectl';

const CLI = path.resolve(__dirname, '../../../../../proxy/cli.js');
const HOST = 'istio-egressgateway.istio-system.svc.cluster.local';

t.test('a sidecar routes to the egress gateway Service with no ServiceEntry', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-kube-sidecar-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const seen: string[] = [];
  const egress = http.createServer((req, res) => {
    seen.push(`${req.headers.host} ${req.url}`);
    res.end('egress gateway');
  });
  await new Promise<void>((r) => egress.listen(0, '127.0.0.1', r));
  t.teardown(() => egress.close());
  const api = new KubeApiServer();
  const server = await api.listen();
  t.teardown(() => api.close());
  api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'istio-egressgateway', namespace: 'istio-system', labels: { istio: 'egressgateway' } }, spec: { clusterIP: '10.96.7.7', ports: [{ name: 'http', port: 80, targetPort: 8080 }] } });
  api.put({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'istio-egressgateway-x1', namespace: 'istio-system', labels: { 'kubernetes.io/service-name': 'istio-egressgateway' } },
    addressType: 'IPv4', ports: [{ name: 'http', port: (egress.address() as { port: number }).port }], endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
  });
  const proxyPort = await freePort();
  const child = spawn(process.execPath, [CLI, 'run', '--role', 'sidecar', '--config', 'kubernetes', '--kubeconfig', writeKubeconfig(dir, { server }),
    '--no-capture', '--http-proxy-port', String(proxyPort), '--admin', '127.0.0.1:0', '--prometheus-port', 'off', '--health-port', 'off',
    '--access-log', 'off', '--concurrency', '1'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, KUBECONFIG: '' } });
  t.teardown(() => child.kill('SIGKILL'));
  const viaProxy = (): Promise<string> => new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: proxyPort, path: `http://${HOST}/orders`, headers: { host: HOST }, agent: false }, (r) => {
      let b = '';
      r.on('data', (c: Buffer) => (b += c.toString()));
      r.on('end', () => resolve(`${r.statusCode} ${b}`));
    });
    req.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code}`));
  });
  let answer = '';
  for (let i = 0; i < 400 && answer !== '200 egress gateway'; i++) {
    answer = await viaProxy();
    if (answer !== '200 egress gateway') await sleep(50);
  }
  t.equal(answer, '200 egress gateway');
  t.equal(seen.at(-1), `${HOST} /orders`, 'routed by Host to the Service\'s endpoint');
});
