// `sluice inject` on the deploy/ samples and on edge cases: what the init container runs (checked
// by parsing its args with `sluice iptables`'s own parser), what the sidecar is allowed, which
// documents pass through unchanged, and annotations refused with the document named.

import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import YAML from 'yaml';
import { inject, INIT_NAME, PROXY_NAME } from '../../../../proxy/inject/inject';
import { parseIptablesArgs } from '../../../../proxy/iptables/options';

const SAMPLES = path.join(__dirname, '..', '..', '..', '..', '..', 'deploy', 'samples');

type Obj = Record<string, any>;
const docs = (text: string): Obj[] => YAML.parseAllDocuments(text).map((d) => d.toJS() as Obj).filter((d) => d !== null);

t.test('the Deployment sample: init container from its annotations, sidecar locked down, other documents unchanged', async (t) => {
  const text = fs.readFileSync(path.join(SAMPLES, 'deployment.yaml'), 'utf8');
  const before = docs(text);
  const r = inject(text, { image: 'registry.test/sluice:1' });
  const after = docs(r.yaml);
  t.same(r.report, ['stdin:2: Deployment/sleep: injected']);
  t.equal(after.length, 3);
  t.same(after[0], before[0], 'ConfigMap unchanged');
  t.same(after[2], before[2], 'Service unchanged');
  t.match(r.yaml, /^# An application to inject/, 'comments of documents passed through are kept');

  const pod = after[1]!['spec']['template'];
  const init = pod.spec.initContainers[0];
  t.equal(init.name, INIT_NAME);
  t.equal(init.image, 'registry.test/sluice:1');
  t.equal(init.args[0], 'iptables');
  const parsed = parseIptablesArgs(init.args.slice(1), {}).options;
  t.same(parsed.excludeOutboundCidrs, ['10.96.0.0/12', '169.254.169.254/32'], 'excludeOutboundIPRanges');
  t.same(parsed.excludeOutboundPorts, [5432], 'excludeOutboundPorts');
  t.same(parsed.excludeInboundPorts, [15090, 15021, 15020, 9901], "excludeInboundPorts, after Istio's own three");
  t.same(parsed.includeOutboundCidrs, ['*'], 'everything else captured');
  t.equal(parsed.inboundPorts, '*');
  t.equal(parsed.proxyUid, 1337);
  t.same(init.securityContext, { runAsUser: 0, runAsGroup: 0, runAsNonRoot: false, privileged: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: false, capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] } }, 'init: root with NET_ADMIN + NET_RAW only');

  const names = pod.spec.containers.map((c: Obj) => c.name);
  t.same(names, ['sleep', PROXY_NAME], 'the app stays first, the sidecar is added');
  const proxy = pod.spec.containers[1];
  t.same(proxy.args, ['run', '--role', 'sidecar', '--config', 'kubernetes', '--drain-duration', '5s', '--labels', 'app=sleep,version=v1']);
  t.same(proxy.securityContext, { runAsUser: 1337, runAsGroup: 1337, runAsNonRoot: true, privileged: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } }, 'sidecar: uid 1337, no capabilities, read-only root');
  t.same(proxy.readinessProbe.httpGet, { path: '/healthz/ready', port: 15021 });
  t.same(proxy.startupProbe.httpGet, { path: '/healthz/ready', port: 15021 });
  t.same(proxy.ports.map((p: Obj) => p.containerPort), [15001, 15006, 15021, 15090]);
  t.same(proxy.resources, { requests: { cpu: '50m', memory: '128Mi' }, limits: { cpu: '2000m', memory: '512Mi' } }, 'proxyCPU / proxyMemoryLimit annotations over the defaults');
  t.same(proxy.env, [{ name: 'SLUICE_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }]);
  t.notMatch(r.yaml, /[&*]a\d/, 'no YAML anchors/aliases in the output');

  const again = inject(r.yaml);
  t.same(again.report, ['stdin:2: Deployment/sleep: not injected (already has a sidecar)'], 'injecting twice changes nothing');
  t.same(docs(again.yaml), after);
});

t.test('the Pod sample: inbound capture limited to its port', async (t) => {
  const r = inject(fs.readFileSync(path.join(SAMPLES, 'pod.yaml'), 'utf8'));
  const pod = docs(r.yaml)[0]!;
  const parsed = parseIptablesArgs(pod['spec'].initContainers[0].args.slice(1), {}).options;
  t.same(parsed.inboundPorts, [8080]);
  t.same(pod['spec'].containers.map((c: Obj) => c.name), ['httpbin', PROXY_NAME]);
});

t.test('pods that are not injected, and kinds without pods', async (t) => {
  const text = `apiVersion: v1
kind: Pod
metadata: { name: out, annotations: { sidecar.istio.io/inject: "false" } }
spec: { containers: [{ name: a, image: x }] }
---
apiVersion: v1
kind: Pod
metadata: { name: host }
spec: { hostNetwork: true, containers: [{ name: a, image: x }] }
---
apiVersion: batch/v1
kind: CronJob
metadata: { name: nightly }
spec:
  schedule: "0 3 * * *"
  jobTemplate: { spec: { template: { spec: { restartPolicy: Never, containers: [{ name: job, image: x }] } } } }
---
apiVersion: v1
kind: Secret
metadata: { name: s }
`;
  const r = inject(text, { configMap: 'mesh-config', config: '/etc/sluice/config' });
  t.same(r.report, [
    'stdin:1: Pod/out: not injected (sidecar.istio.io/inject: "false")',
    'stdin:2: Pod/host: not injected (hostNetwork: the pod has no network namespace of its own to capture in)',
    'stdin:3: CronJob/nightly: injected',
  ]);
  const out = docs(r.yaml);
  t.same(out[0], docs(text)[0]);
  t.same(out[3], docs(text)[3], 'the Secret passes through');
  const job = out[2]!['spec'].jobTemplate.spec.template.spec;
  t.same(job.containers.map((c: Obj) => c.name), ['job', PROXY_NAME], 'a CronJob pod template is injected');
  t.same(job.volumes, [{ name: 'sluice-config', configMap: { name: 'mesh-config' } }], '--config-map mounts the ConfigMap');
  t.same(job.containers[1].volumeMounts, [{ name: 'sluice-config', mountPath: '/etc/sluice/config', readOnly: true }]);
  t.equal(job.containers[1].args[4], '/etc/sluice/config');
});

t.test('annotations sluice cannot honour are refused with the document and annotation named', async (t) => {
  const pod = (annotations: string): string => `apiVersion: v1\nkind: Pod\nmetadata: { name: p, annotations: { ${annotations} } }\nspec: { containers: [{ name: a, image: x }] }\n`;
  t.throws(() => inject(pod('traffic.sidecar.istio.io/excludeOutboundIPRanges: "10.0.0.0/33"')), { code: 'INJ_ERR_INPUT', message: /^stdin:1: Pod\/p: traffic\.sidecar\.istio\.io\/excludeOutboundIPRanges: "10\.0\.0\.0\/33" has a bad prefix length/ });
  t.throws(() => inject(pod('traffic.sidecar.istio.io/excludeOutboundPorts: "http"')), { message: /excludeOutboundPorts: "http" is not a port/ });
  t.throws(() => inject(pod('traffic.sidecar.istio.io/includeOutboundPorts: "443"')), { message: /includeOutboundPorts: sluice iptables has no outbound port include list/ });
  t.throws(() => inject(pod('sidecar.istio.io/interceptionMode: TPROXY')), { message: /REDIRECT only/ });
  t.throws(() => inject(pod('sidecar.istio.io/proxyCPU: lots')), { message: /proxyCPU: "lots" is not a Kubernetes quantity/ });
  t.throws(() => inject('kind: Pod\nmetadata: {name: x\n'), { code: 'INJ_ERR_INPUT', message: /^stdin:1: invalid YAML/ });
});
