// The Kubernetes config source at scale ("memory and CPU stay bounded for 10k
// Services"): the test API server (test/helpers/kube-api-server) holds SERVICES Services, each
// with one EndpointSlice of two endpoints, plus a Gateway and a VirtualService; the source lists
// them (pages of 500), builds the config, and the compiler compiles it; then one Service changes
// and the rebuild it causes is timed. Reports time and heap (after a GC) per step, as JSON.
//
//   node --expose-gc dist/bench/kube-source.js          (SERVICES=10000 by default)
//
// The API server runs in this process too: its own memory is measured before the source starts
// and subtracted. Not part of `npm test` (timings on a shared machine are noise, not assertions).

import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { CompiledConfig } from '../config/sources/compile-worker';
import { compile } from '../config/compile/index';
import { fromKubeconfig } from '../config/sources/kubernetes/kubeconfig';
import { KubernetesSource } from '../config/sources/kubernetes/source';
import type { LoadResult } from '../config/resources/load';
import { KubeApiServer } from '../test/helpers/kube-api-server/server';
import { writeKubeconfig } from '../test/helpers/kube-api-server/kubectl';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const SERVICES = Number(process.env['SERVICES'] ?? 10_000);

function heapMb(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return Math.round(process.memoryUsage().heapUsed / 1e5) / 10;
}

function ip(i: number, base: number): string {
  return `10.${base}.${(i >> 8) & 255}.${i & 255}`;
}

async function main(): Promise<void> {
  const api = new KubeApiServer();
  const server = await api.listen();
  for (let i = 0; i < SERVICES; i++) {
    const ns = `ns${i % 50}`;
    api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: `svc${i}`, namespace: ns, labels: { app: `svc${i}` } }, spec: { clusterIP: ip(i, 96), ports: [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'grpc', port: 9000 }] } });
    api.put({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `svc${i}-abcde`, namespace: ns, labels: { 'kubernetes.io/service-name': `svc${i}` } },
      addressType: 'IPv4', ports: [{ name: 'http', port: 8080 }, { name: 'grpc', port: 9000 }],
      endpoints: [{ addresses: [ip(i, 1)], conditions: { ready: true } }, { addresses: [ip(i, 2)], conditions: { ready: true } }],
    });
  }
  api.put({ apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name: 'egress', namespace: 'istio-system' }, spec: { selector: { istio: 'egressgateway' }, servers: [{ port: { number: 8080, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }] } });
  api.put({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'routes', namespace: 'istio-system' }, spec: { hosts: ['*'], gateways: ['egress'], http: [{ route: [{ destination: { host: 'svc1.ns1.svc.cluster.local', port: { number: 80 } } }] }] } });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-kube-bench-'));
  const access = fromKubeconfig(writeKubeconfig(dir, { server }));
  const baseHeap = heapMb();

  let changed: ((r: LoadResult) => void) | null = null;
  const source = new KubernetesSource({
    access, namespaces: null, load: { defaultNamespace: 'istio-system' },
    log: { info: () => undefined, warn: (o, m) => process.stderr.write(`warn ${m} ${JSON.stringify(o)}\n`) },
    onChange: (r) => changed?.(r),
  });
  const cpu0 = process.cpuUsage();
  let t0 = performance.now();
  const loaded = await source.load();
  const loadMs = performance.now() - t0;
  const loadCpuMs = (process.cpuUsage(cpu0).user + process.cpuUsage(cpu0).system) / 1000;
  const storeHeap = heapMb() - baseHeap;
  t0 = performance.now();
  const opts = { role: 'gateway' as const, namespace: 'istio-system', labels: { istio: 'egressgateway' }, outboundPolicy: 'ALLOW_ANY' as const, certsDir: '/etc/certs' };
  let snapshot = compile(loaded.resources, opts);
  const compileMs = performance.now() - t0;
  const withSnapshotHeap = heapMb() - baseHeap;
  source.start();

  // One Service changes: the watch delivers it, the source debounces and rebuilds (in-thread).
  const delivered = new Promise<LoadResult>((resolve) => (changed = resolve));
  t0 = performance.now();
  api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc1', namespace: 'ns1' }, spec: { clusterIP: ip(1, 96), ports: [{ name: 'http', port: 81 }] } });
  const rebuilt = await delivered;
  const rebuildMs = performance.now() - t0;
  t0 = performance.now();
  snapshot = compile(rebuilt.resources, opts);
  const recompileMs = performance.now() - t0;

  // The same with the compile on the config thread, as `sluice run` does: how long the event loop stalls.
  let compiled: ((c: CompiledConfig) => void) | null = null;
  source.offThread(opts, (c) => compiled?.(c));
  const warm = new Promise<CompiledConfig>((resolve) => (compiled = resolve));
  api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc2', namespace: 'ns2' }, spec: { clusterIP: ip(2, 96), ports: [{ name: 'http', port: 81 }] } });
  await warm; // the first starts the thread
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const offDone = new Promise<CompiledConfig>((resolve) => (compiled = resolve));
  t0 = performance.now();
  api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc3', namespace: 'ns3' }, spec: { clusterIP: ip(3, 96), ports: [{ name: 'http', port: 81 }] } });
  const off = await offDone;
  const offMs = performance.now() - t0;
  loop.disable();

  const report = {
    services: SERVICES, endpointSlices: SERVICES,
    serviceEntries: loaded.resources.serviceEntries.length,
    clusters: snapshot.clusters.size,
    load: { ms: Math.round(loadMs), cpuMs: Math.round(loadCpuMs), listRequests: api.requests.filter((r) => r.includes('limit=')).length },
    heapMb: { sourceStores: Math.round(storeHeap * 10) / 10, storesAndSnapshot: Math.round(withSnapshotHeap * 10) / 10 },
    compileMs: Math.round(compileMs),
    change: { deliveredMs: Math.round(rebuildMs), recompileMs: Math.round(recompileMs), note: 'deliveredMs includes the 100 ms debounce and the source rebuild (translate + load)' },
    changeOffThread: { compiledMs: Math.round(offMs), snapshot: off.snapshot !== null, eventLoopMaxStallMs: Math.round(loop.max / 1e6), note: 'as sluice run: translate + load on the main thread, compile on the config thread, snapshot received in pieces' },
    node: process.version, gcExposed: typeof (globalThis as { gc?: unknown }).gc === 'function',
  };
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  source.close();
  await api.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

void main();
