// `sluice inject`, as `istioctl kube-inject -f`: multi-document YAML in, the same documents out, with
// every pod template (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) given
//   - init container `sluice-init`: `sluice iptables` with the pod's traffic annotations
//     (annotations.ts), as root with only NET_ADMIN and NET_RAW, the way istio-init runs;
//   - container `sluice-proxy`: `sluice run --role sidecar` as uid/gid 1337 (the UID the capture
//     rules exempt), no capabilities, read-only root, readiness/startup probes on 15021
//     /healthz/ready, ports 15001/15006/15021/15090, Istio's default resources.
// Other documents, and pods that opted out (sidecar.istio.io/inject: "false"), hostNetwork pods
// (no network namespace of their own to capture in) and pods already injected, are passed through
// as parsed (same content; comments kept).

import YAML from 'yaml';
import { InjectError, injectionDisabled, sidecarSettings } from './annotations';

export const INIT_NAME = 'sluice-init';
export const PROXY_NAME = 'sluice-proxy';

export interface InjectOptions {
  /** the sluice image for both containers */
  readonly image: string;
  /** `--config` of the sidecar: `kubernetes` (watch the API server) or a path */
  readonly config: string;
  /** a ConfigMap mounted read-only at `config` (when config is a path) */
  readonly configMap: string | null;
  /** `--drain-duration` for the sidecar; the pod's terminationGracePeriodSeconds should exceed it */
  readonly drainDuration: string;
  readonly imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
}

export const DEFAULT_INJECT_OPTIONS: InjectOptions = { image: 'sluice:0.1.0', config: 'kubernetes', configMap: null, drainDuration: '5s', imagePullPolicy: 'IfNotPresent' };

export interface InjectResult {
  readonly yaml: string;
  /** one line per document: injected, or why not */
  readonly report: string[];
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Where a kind keeps its pod template (metadata + spec); null for kinds without pods. */
function podTemplateOf(doc: Obj): { metadata: Obj; spec: Obj } | null {
  const kind = doc['kind'];
  const spec = doc['spec'];
  if (!isObj(spec)) return null;
  let holder: unknown;
  if (kind === 'Pod') holder = doc;
  else if (kind === 'Deployment' || kind === 'StatefulSet' || kind === 'DaemonSet' || kind === 'ReplicaSet' || kind === 'Job') holder = spec['template'];
  else if (kind === 'CronJob') holder = isObj(spec['jobTemplate']) && isObj(spec['jobTemplate']['spec']) ? spec['jobTemplate']['spec']['template'] : undefined;
  else return null;
  if (!isObj(holder)) return null;
  if (!isObj(holder['metadata'])) holder['metadata'] = {};
  if (!isObj(holder['spec'])) return null;
  return { metadata: holder['metadata'] as Obj, spec: holder['spec'] as Obj };
}

function labelsArg(labels: Obj): string {
  return Object.entries(labels).map(([k, v]) => `${k}=${String(v)}`).join(',');
}

const PROBE = { httpGet: { path: '/healthz/ready', port: 15021 } };

function containers(o: InjectOptions, labels: Obj, settings: ReturnType<typeof sidecarSettings>): { init: Obj; proxy: Obj } {
  const init: Obj = {
    name: INIT_NAME,
    image: o.image,
    imagePullPolicy: o.imagePullPolicy,
    args: settings.iptablesArgs,
    resources: { requests: { cpu: '10m', memory: '40Mi' }, limits: { cpu: '500m', memory: '128Mi' } },
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
      // iptables takes its lock in /run (xtables.lock), as istio-init does.
      readOnlyRootFilesystem: false,
      capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] },
    },
  };
  const args = ['run', '--role', 'sidecar', '--config', o.config, '--drain-duration', o.drainDuration];
  const labelText = labelsArg(labels);
  if (labelText !== '') args.push('--labels', labelText);
  const proxy: Obj = {
    name: PROXY_NAME,
    image: o.image,
    imagePullPolicy: o.imagePullPolicy,
    args,
    env: [
      // --namespace: the pod's own, as Istio's POD_NAMESPACE.
      { name: 'SLUICE_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    ],
    ports: [
      { name: 'outbound', containerPort: 15001, protocol: 'TCP' },
      { name: 'inbound', containerPort: 15006, protocol: 'TCP' },
      { name: 'health', containerPort: 15021, protocol: 'TCP' },
      { name: 'http-envoy-prom', containerPort: 15090, protocol: 'TCP' },
    ],
    // Istio's sidecar probes: ready within a minute of start, then polled every 2 s.
    startupProbe: { ...PROBE, periodSeconds: 1, timeoutSeconds: 3, failureThreshold: 600 },
    readinessProbe: { ...PROBE, initialDelaySeconds: 1, periodSeconds: 2, timeoutSeconds: 3, failureThreshold: 30 },
    resources: settings.resources,
    securityContext: {
      runAsUser: 1337,
      runAsGroup: 1337,
      runAsNonRoot: true,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    },
  };
  if (o.configMap !== null) proxy['volumeMounts'] = [{ name: 'sluice-config', mountPath: o.config, readOnly: true }];
  return { init, proxy };
}

/** Inject one document in place; returns what happened, for the report. */
function injectDoc(doc: Obj, o: InjectOptions, where: string): string | null {
  const pod = podTemplateOf(doc);
  if (pod === null) return null;
  const annotations = isObj(pod.metadata['annotations']) ? pod.metadata['annotations'] : {};
  const labels = isObj(pod.metadata['labels']) ? pod.metadata['labels'] : {};
  if (injectionDisabled(annotations, labels)) return `${where}: not injected (sidecar.istio.io/inject: "false")`;
  if (pod.spec['hostNetwork'] === true) return `${where}: not injected (hostNetwork: the pod has no network namespace of its own to capture in)`;
  const existing = [...(Array.isArray(pod.spec['initContainers']) ? pod.spec['initContainers'] : []), ...(Array.isArray(pod.spec['containers']) ? pod.spec['containers'] : [])];
  if (existing.some((c) => isObj(c) && (c['name'] === PROXY_NAME || c['name'] === 'istio-proxy'))) return `${where}: not injected (already has a sidecar)`;
  if (!Array.isArray(pod.spec['containers']) || pod.spec['containers'].length === 0) throw new InjectError(`${where}: spec.containers is empty`);
  const settings = sidecarSettings(annotations, where);
  const { init, proxy } = containers(o, labels, settings);
  // The capture rules go first, before any other init container could open a connection.
  pod.spec['initContainers'] = [init, ...(Array.isArray(pod.spec['initContainers']) ? pod.spec['initContainers'] : [])];
  pod.spec['containers'] = [...pod.spec['containers'], proxy];
  if (o.configMap !== null) {
    const volumes = Array.isArray(pod.spec['volumes']) ? pod.spec['volumes'] : [];
    pod.spec['volumes'] = [...volumes, { name: 'sluice-config', configMap: { name: o.configMap } }];
  }
  // Istio marks what it injected; tools (and a second `sluice inject`) read it.
  pod.metadata['annotations'] = { ...annotations, 'sidecar.istio.io/status': JSON.stringify({ initContainers: [INIT_NAME], containers: [PROXY_NAME], volumes: o.configMap === null ? [] : ['sluice-config'], injectedBy: 'sluice' }) };
  return `${where}: injected`;
}

/** Inject every document of `text`; throws InjectError (YAML errors, bad annotations) naming the document. */
export function inject(text: string, options: Partial<InjectOptions> = {}): InjectResult {
  const o = { ...DEFAULT_INJECT_OPTIONS, ...options };
  const docs = YAML.parseAllDocuments(text);
  const out: string[] = [];
  const report: string[] = [];
  docs.forEach((d, i) => {
    const at = `stdin:${i + 1}`;
    if (d.errors.length > 0) throw new InjectError(`${at}: invalid YAML: ${d.errors[0]!.message}`);
    const value: unknown = d.toJS();
    if (value === null || value === undefined) return; // an empty document (a trailing ---)
    if (!isObj(value)) {
      out.push(d.toString());
      return;
    }
    const meta = isObj(value['metadata']) ? value['metadata'] : {};
    const where = `${at}: ${String(value['kind'] ?? '?')}/${String(meta['name'] ?? meta['generateName'] ?? '?')}`;
    const done = injectDoc(value, o, where);
    if (done === null) out.push(d.toString());
    else {
      report.push(done);
      out.push(done.endsWith(': injected') ? YAML.stringify(value, { lineWidth: 0, aliasDuplicateObjects: false }) : d.toString());
    }
  });
  return { yaml: out.map((s) => (s.endsWith('\n') ? s : s + '\n')).join('---\n'), report };
}
