// Credentials: kubeconfig fields, the order --kubeconfig > $KUBECONFIG > in-cluster, and the client
// over real TLS (test CA made with openssl): CA checked, client certificates, bearer tokens,
// insecure-skip-tls-verify.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fromKubeconfig, KubeconfigError, resolveAccess } from '../../../../../config/sources/kubernetes/kubeconfig';
import { KubeApiError, KubeClient } from '../../../../../config/sources/kubernetes/client';
import { makeCa, makeLeaf } from '../../../../e2e/harness/certs';
import { KubeApiServer } from '../../../../helpers/kube-api-server/server';
import { writeKubeconfig } from '../../../../helpers/kube-api-server/kubectl';

function tmp(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-kubeconfig-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('kubeconfig: current context, cluster and user fields; relative files; errors name the file', async (t) => {
  const dir = tmp(t);
  fs.writeFileSync(path.join(dir, 'ca.pem'), 'CA PEM');
  fs.writeFileSync(path.join(dir, 'token'), 'from-file\n');
  const file = path.join(dir, 'config');
  fs.writeFileSync(file, `apiVersion: v1
kind: Config
current-context: b
clusters:
- {name: one, cluster: {server: "https://10.0.0.1:6443", certificate-authority: ca.pem, tls-server-name: kubernetes}}
- {name: two, cluster: {server: "https://[fd00::1]:443", insecure-skip-tls-verify: true}}
users:
- {name: tok, user: {tokenFile: token}}
- {name: cert, user: {client-certificate-data: ${Buffer.from('CERT').toString('base64')}, client-key-data: ${Buffer.from('KEY').toString('base64')}}}
contexts:
- {name: a, context: {cluster: two, user: cert}}
- {name: b, context: {cluster: one, user: tok, namespace: shop}}
`);
  const a = fromKubeconfig(file);
  t.equal(a.server.href, 'https://10.0.0.1:6443/');
  t.equal(a.ca?.toString(), 'CA PEM');
  t.equal(a.serverName, 'kubernetes');
  t.equal(a.token(), 'from-file');
  t.equal(a.namespace, 'shop');
  t.equal(a.insecureSkipTlsVerify, false);
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('current-context: b', 'current-context: a'));
  const b = fromKubeconfig(file);
  t.equal(b.server.hostname, '[fd00::1]');
  t.equal(b.insecureSkipTlsVerify, true);
  t.equal(b.cert?.toString(), 'CERT');
  t.equal(b.key?.toString(), 'KEY');
  t.equal(b.token(), null);

  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('current-context: a', 'current-context: nope'));
  t.throws(() => fromKubeconfig(file), new KubeconfigError(`kubeconfig ${file}: context "nope" not found in contexts`));
  fs.writeFileSync(file, 'apiVersion: v1\ncurrent-context: x\nclusters: [{name: c, cluster: {server: "https://k"}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {exec: {command: aws}}}]\n');
  t.throws(() => fromKubeconfig(file), /authenticates with an exec plugin, which sluice does not run/);
  t.throws(() => fromKubeconfig(path.join(dir, 'missing')), /ENOENT/);
});

t.test('credentials order: --kubeconfig, then $KUBECONFIG, then the pod service account', async (t) => {
  const dir = tmp(t);
  const one = writeKubeconfig(fs.mkdtempSync(path.join(dir, 'a-')), { server: 'https://one.example:6443', token: 'a' });
  const two = writeKubeconfig(fs.mkdtempSync(path.join(dir, 'b-')), { server: 'https://two.example:6443', token: 'b' });
  const sa = path.join(dir, 'sa');
  fs.mkdirSync(sa);
  fs.writeFileSync(path.join(sa, 'token'), 'sa-token');
  fs.writeFileSync(path.join(sa, 'ca.crt'), 'SA CA');
  fs.writeFileSync(path.join(sa, 'namespace'), 'istio-system');
  const pod = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };
  t.equal(resolveAccess({ kubeconfig: one, env: { ...pod, KUBECONFIG: two }, serviceAccountDir: sa }).server.hostname, 'one.example');
  t.equal(resolveAccess({ kubeconfig: null, env: { ...pod, KUBECONFIG: `${path.join(dir, 'none')}:${two}` }, serviceAccountDir: sa }).server.hostname, 'two.example', 'the first KUBECONFIG file that exists');
  const inCluster = resolveAccess({ kubeconfig: null, env: pod, serviceAccountDir: sa });
  t.equal(inCluster.server.href, 'https://10.96.0.1/');
  t.equal(inCluster.token(), 'sa-token');
  t.equal(inCluster.ca?.toString(), 'SA CA');
  t.equal(inCluster.namespace, 'istio-system');
  t.equal(resolveAccess({ kubeconfig: null, env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443' }, serviceAccountDir: sa }).server.host, '[fd00::1]:6443');
  t.throws(() => resolveAccess({ kubeconfig: null, env: pod, serviceAccountDir: path.join(dir, 'no-sa') }), /no service account token/);
});

t.test('the client over TLS: CA verified, token or client certificate, insecure-skip-tls-verify', async (t) => {
  const dir = tmp(t);
  const pki = path.join(dir, 'pki');
  const ca = await makeCa(pki, 'kube-ca');
  const other = await makeCa(pki, 'other-ca');
  const serverCert = await makeLeaf(pki, ca, { cn: 'kube-apiserver', ips: ['127.0.0.1'] });
  const clientCert = await makeLeaf(pki, ca, { cn: 'system:serviceaccount:istio-system:sluice' });
  const read = (f: string): string => fs.readFileSync(f, 'utf8');
  const api = new KubeApiServer({ token: 'sesame', tls: { key: read(serverCert.keyFile), cert: read(serverCert.certFile), ca: read(ca.certFile) } });
  const server = await api.listen();
  t.teardown(() => api.close());
  api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: {} });
  const list = async (o: Parameters<typeof writeKubeconfig>[1]): Promise<unknown> => {
    const client = new KubeClient(fromKubeconfig(writeKubeconfig(fs.mkdtempSync(path.join(dir, 'kc-')), o)));
    try {
      return await client.get('/api/v1/services');
    } finally {
      client.close();
    }
  };
  t.match(await list({ server, caPem: read(ca.certFile), token: 'sesame' }), { kind: 'ServiceList', items: [{ metadata: { name: 'web' } }] }, 'bearer token');
  t.match(await list({ server, caPem: read(ca.certFile), clientCertPem: read(clientCert.certFile), clientKeyPem: read(clientCert.keyFile) }), { kind: 'ServiceList' }, 'client certificate');
  const failure = (p: Promise<unknown>): Promise<unknown> => p.then(() => null, (e: unknown) => e);
  const anonymous = await failure(list({ server, caPem: read(ca.certFile) }));
  t.ok(anonymous instanceof KubeApiError);
  t.match(anonymous, { status: 401, reason: 'Unauthorized' }, 'neither token nor certificate: the Status of the 401');
  const untrusted = await failure(list({ server, caPem: read(other.certFile), token: 'sesame' }));
  t.match(untrusted, { status: 0, reason: /CERT|SIGNATURE/ }, 'a server the CA did not sign is refused');
  t.match(await list({ server, insecureSkipTlsVerify: true, token: 'sesame' }), { kind: 'ServiceList' }, 'insecure-skip-tls-verify');
});
