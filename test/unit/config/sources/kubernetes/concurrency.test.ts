// `--config kubernetes --concurrency 2`: the primary and each worker run their own source; every
// worker routes to a Service + EndpointSlice and follows a watched change. Real processes.
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

function get(port: number): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (r) => {
      let b = '';
      r.on('data', (c: Buffer) => (b += c.toString()));
      r.on('end', () => resolve(`${r.statusCode} ${b}`));
    });
    req.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code}`));
  });
}

t.test('two workers, each configured from the API server', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-kube-workers-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const upstream = http.createServer((_q, r) => r.end('web'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => upstream.close());
  const api = new KubeApiServer();
  const server = await api.listen();
  t.teardown(() => api.close());
  const gwPort = await freePort();
  const route = (http: object[]): object => ({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'r', namespace: 'istio-system' }, spec: { hosts: ['*'], gateways: ['egress'], http } });
  api.put({ apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name: 'egress', namespace: 'istio-system' }, spec: { selector: { istio: 'egressgateway' }, servers: [{ port: { number: gwPort, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }] } });
  api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }] } });
  api.put({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'web-a', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', ports: [{ name: 'http', port: (upstream.address() as { port: number }).port }], endpoints: [{ addresses: ['127.0.0.1'] }] });
  api.put(route([{ route: [{ destination: { host: 'web.default.svc.cluster.local', port: { number: 80 } } }] }]) as never);
  const child = spawn(process.execPath, [CLI, 'run', '--role', 'gateway', '--config', 'kubernetes', '--kubeconfig', writeKubeconfig(dir, { server }),
    '--namespace', 'istio-system', '--labels', 'istio=egressgateway', '--admin', '127.0.0.1:0', '--prometheus-port', 'off', '--health-port', 'off',
    '--access-log', 'off', '--concurrency', '2'], { stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, KUBECONFIG: '' } });
  t.teardown(() => child.kill('SIGKILL'));
  const until = async (what: string, ok: () => Promise<boolean> | boolean): Promise<void> => {
    for (let i = 0; i < 600; i++) {
      if (await ok()) return;
      await sleep(50);
    }
    throw new Error(`timed out waiting for ${what}`);
  };
  await until('routing', async () => (await get(gwPort)) === '200 web');
  await until('three sources watching (primary + 2 workers)', () => api.openWatches('virtualservices') === 3);
  api.put(route([{ directResponse: { status: 418, body: { string: 'changed' } } }]) as never);
  // Connections spread over the workers: ten answers in a row from the new config means both have it.
  await until('every worker to apply the change', async () => (await Promise.all(Array.from({ length: 10 }, () => get(gwPort)))).every((a) => a === '418 changed'));
  t.pass('both workers follow the watch');
});
