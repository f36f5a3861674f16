// The manifests in deploy/ and `sluice inject`'s output, through the real kubectl:
// `sluice inject < sample | kubectl apply --dry-run=client -f -` and `kubectl apply --dry-run=client
// -f deploy/...`. kubectl needs an API server even for a client-side dry run (discovery maps each
// kind to a resource, and it GETs each object to choose create or patch); with none reachable it
// fails before reading the file. So it talks to the test API server (test/helpers/kube-api-server)
// on loopback, which serves discovery for the kinds below. It serves no OpenAPI documents, so
// kubectl's schema validation is off (--validate=false): what is checked is that every document
// parses, names a kind/apiVersion a cluster serves and has a name, and that kubectl would create it
// (not that every field is spelled right; test/unit/proxy/inject checks the injected fields).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { kubectl, writeKubeconfig } from '../../helpers/kube-api-server/kubectl';
import { defaultResourceTypes, type ResourceType } from '../../helpers/kube-api-server/resources';
import { KubeApiServer } from '../../helpers/kube-api-server/server';

const ROOT = path.join(__dirname, '..', '..', '..', '..');
const CLI = path.join(ROOT, 'dist', 'proxy', 'cli.js');
const DEPLOY = path.join(ROOT, 'deploy');

const rt = (group: string, version: string, kind: string, name: string, namespaced = true): ResourceType => ({ group, version, kind, name, singularName: kind.toLowerCase(), namespaced, shortNames: [] });

/** What the manifests use beyond the test server's defaults, as a real cluster's discovery lists them. */
const EXTRA_TYPES = [
  rt('', 'v1', 'ServiceAccount', 'serviceaccounts'),
  rt('policy', 'v1', 'PodDisruptionBudget', 'poddisruptionbudgets'),
  rt('rbac.authorization.k8s.io', 'v1', 'ClusterRole', 'clusterroles', false),
  rt('rbac.authorization.k8s.io', 'v1', 'ClusterRoleBinding', 'clusterrolebindings', false),
];

async function cluster(t: { teardown(fn: () => unknown): void }): Promise<{ api: KubeApiServer; kubeconfig: string }> {
  const api = new KubeApiServer({ types: [...defaultResourceTypes(), ...EXTRA_TYPES] });
  const server = await api.listen();
  t.teardown(() => api.close());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-kubectl-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return { api, kubeconfig: writeKubeconfig(dir, { server }) };
}

function sluiceInject(input: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'inject', '--image', 'registry.test/sluice:0.1.0'], { input, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('sluice inject < sample | kubectl apply --dry-run=client -f -', async (t) => {
  const { api, kubeconfig } = await cluster(t);
  const expected: Record<string, string[]> = {
    'deployment.yaml': ['configmap/sleep-settings created (dry run)', 'deployment.apps/sleep created (dry run)', 'service/sleep created (dry run)'],
    'pod.yaml': ['pod/httpbin created (dry run)'],
  };
  for (const [sample, lines] of Object.entries(expected)) {
    const injected = sluiceInject(fs.readFileSync(path.join(DEPLOY, 'samples', sample), 'utf8'));
    t.equal(injected.status, 0, injected.stderr);
    t.match(injected.stderr, /: injected\n/, `${sample}: the pod template was injected`);
    const out = await kubectl(kubeconfig, ['apply', '--dry-run=client', '-f', '-'], injected.stdout);
    t.same(out.trim().split('\n'), lines, `${sample}: kubectl accepts every document`);
  }
  t.notOk(api.requests.some((r) => !r.startsWith('GET ')), 'a dry run: kubectl only read');
  t.ok(api.requests.some((r) => r.startsWith('GET /apis/apps/v1/namespaces/default/deployments/sleep')), 'kubectl looked the Deployment up on the server');
});

t.test('the gateway manifests pass kubectl apply --dry-run=client', async (t) => {
  const { kubeconfig } = await cluster(t);
  const files = ['rbac.yaml', 'egress-gateway.yaml', 'sidecar-rbac.yaml'].flatMap((f) => ['-f', path.join(DEPLOY, f)]);
  const out = await kubectl(kubeconfig, ['apply', '--dry-run=client', ...files]);
  t.same(out.trim().split('\n'), [
    'clusterrole.rbac.authorization.k8s.io/sluice-config-reader created (dry run)',
    'serviceaccount/sluice-egressgateway created (dry run)',
    'clusterrolebinding.rbac.authorization.k8s.io/sluice-egressgateway created (dry run)',
    'deployment.apps/istio-egressgateway created (dry run)',
    'service/istio-egressgateway created (dry run)',
    'poddisruptionbudget.policy/istio-egressgateway created (dry run)',
    'clusterrolebinding.rbac.authorization.k8s.io/sluice-sidecar-default-default created (dry run)',
  ]);
});

t.test('the check can fail: kubectl rejects a kind the cluster does not serve', async (t) => {
  const { kubeconfig } = await cluster(t);
  const bad = 'apiVersion: apps/v1\nkind: Deploymnt\nmetadata: { name: x, namespace: default }\nspec: {}\n';
  await t.rejects(kubectl(kubeconfig, ['apply', '--dry-run=client', '-f', '-'], bad), /no matches for kind "Deploymnt"/);
});
