// The sidecar's inbound side (proxy/listener/inbound.ts) beside the outbound capture row: CPU per
// short TCP connection and per HTTP request of traffic entering a pod through `sluice iptables`'
// PREROUTING REDIRECT to 15006, in network namespaces this bench creates (198.18.41.0/24).
//
//   client 198.18.41.10  tcp-load short -> pod:7000 (undeclared port: InboundPassthroughClusterIpv4)
//                        tcp-load short -> pod:7001 (excluded from capture: direct, no proxy)
//                        autocannon keep-alive -> pod:8000 (declared HTTP: inbound|8000||, L7)
//                        autocannon keep-alive -> pod:8001 (excluded: direct)
//   pod    198.18.41.2   upstream.ts (tcp :7000 :7001, http :8000 :8001), sluice sidecar (uid 1337)
//
// Plain text under PERMISSIVE (the mTLS path's cost is the TLS termination, measured by the
// gateway's tls rows). The app is reached on 127.0.0.1 from 127.0.0.6, as in a pod.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Topology } from '../../test/e2e/harness/topology';
import { PROXY_UID } from '../../test/e2e/harness/prereqs';
import { distFile, sluiceArgv } from '../../test/e2e/harness/paths';
import type { TcpLoadResult } from './tcp-load';
import type { HttpLoadResult } from './http-load';
import { procCpuSeconds } from './peers';

const POD_IP = '198.18.41.2';
const CLIENT_IP = '198.18.41.10';

export interface InboundResult {
  tcp: { captured: TcpLoadResult; direct: TcpLoadResult; proxyCpuUsPerConn: number };
  http: { captured: HttpLoadResult; direct: HttpLoadResult; proxyCpuUsPerRequest: number };
}

function podConfig(): string {
  return `apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: { name: bench-app, namespace: default }
spec:
  hosts: [bench-app.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{ number: 8000, name: http, protocol: HTTP }]
  resolution: STATIC
  workloadSelector: { labels: { app: bench-app } }
`;
}

export async function runInbound(o: { durationS: number; parallel: number; connections: number; log: (s: string) => void }): Promise<InboundResult> {
  const teardowns: (() => unknown)[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-inbound-'));
  fs.chmodSync(dir, 0o755);
  try {
    const topo = await Topology.create({ teardown: (fn) => teardowns.push(fn) },
      [{ name: 'mesh', cidr: '198.18.41.0/24' }],
      [{ name: 'pod', nets: [{ net: 'mesh', address: POD_IP }] }, { name: 'client', nets: [{ net: 'mesh', address: CLIENT_IP }] }]);
    teardowns.push(() => topo.destroy());
    for (const [tcpPort, httpPort] of [[7000, 8000], [7001, 8001]] as const) {
      const up = topo.spawn('pod', [process.execPath, distFile('bench/macro/upstream.js'), JSON.stringify({ host: '0.0.0.0', tcpPort, httpPort, only: ['tcp', 'http'] })], { name: `app-${tcpPort}` });
      await up.waitForLine(/"ready":true/, 10_000);
    }
    const rules = await topo.exec('pod', sluiceArgv(['iptables', '--exclude-inbound-ports', '15090,15021,15020,7001,8001']));
    if (rules.code !== 0) throw new Error(`sluice iptables failed: ${rules.stderr}`);
    const cfg = path.join(dir, 'pod.yaml');
    fs.writeFileSync(cfg, podConfig(), { mode: 0o644 });
    const sidecar = topo.spawn('pod', sluiceArgv(['run', '--role', 'sidecar', '--labels', 'app=bench-app', '--config', cfg, '--concurrency', '1', '--prometheus-port', 'off', '--health-port', 'off', '--access-log', 'off']), { uid: PROXY_UID, name: 'sidecar' });
    await sidecar.waitForLine(/sluice is live/, 15_000);

    const timeoutMs = (o.durationS + 40) * 1000;
    const tcp = async (port: number): Promise<TcpLoadResult> => {
      const args = JSON.stringify({ mode: 'short', host: POD_IP, port, durationMs: o.durationS * 1000, warmupMs: 1000, parallel: o.parallel });
      const r = await topo.exec('client', [process.execPath, distFile('bench/macro/tcp-load.js'), args], { timeoutMs });
      if (r.code !== 0) throw new Error(`inbound tcp driver failed: ${r.stderr}`);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as TcpLoadResult;
    };
    const http = async (port: number): Promise<HttpLoadResult> => {
      const args = JSON.stringify({ url: `http://${POD_IP}:${port}/`, host: 'bench-app', connections: o.connections, durationS: o.durationS, warmupS: 1 });
      const r = await topo.exec('client', [process.execPath, distFile('bench/macro/inbound.js'), 'http', args], { timeoutMs });
      if (r.code !== 0) throw new Error(`inbound http driver failed: ${r.stderr}`);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as HttpLoadResult;
    };
    const measured = async <R>(run: () => Promise<R>, units: (r: R) => number): Promise<{ r: R; cpuUs: number }> => {
      const c0 = procCpuSeconds(sidecar.pid!);
      const r = await run();
      return { r, cpuUs: ((procCpuSeconds(sidecar.pid!) - c0) * 1e6) / Math.max(1, units(r)) };
    };
    const directTcp = await tcp(7001);
    const capTcp = await measured(() => tcp(7000), (r) => r.totalUnits);
    o.log(`  inbound/tcp: direct ${directTcp.rate.toFixed(0)} conn/s, captured ${capTcp.r.rate.toFixed(0)} conn/s, sidecar ${capTcp.cpuUs.toFixed(0)} CPU-µs/conn`);
    const directHttp = await http(8001);
    const capHttp = await measured(() => http(8000), (r) => r.totalRequests);
    o.log(`  inbound/http: direct ${directHttp.rps.toFixed(0)} req/s, captured ${capHttp.r.rps.toFixed(0)} req/s, sidecar ${capHttp.cpuUs.toFixed(1)} CPU-µs/req`);
    return {
      tcp: { captured: capTcp.r, direct: directTcp, proxyCpuUsPerConn: capTcp.cpuUs },
      http: { captured: capHttp.r, direct: directHttp, proxyCpuUsPerRequest: capHttp.cpuUs },
    };
  } finally {
    for (const fn of teardowns.reverse()) await fn();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// In the client namespace: `node inbound.js http '{SaturationOptions}'` prints one HttpLoadResult line.
async function main(): Promise<void> {
  if (process.argv[2] !== 'http') throw new Error('usage: inbound.js http JSON');
  const { saturate } = await import('./http-load');
  process.stdout.write(JSON.stringify(await saturate(JSON.parse(process.argv[3] ?? '{}'))) + '\n');
}

if (require.main === module) void main().catch((e: unknown) => {
  process.stderr.write(String(e) + '\n');
  process.exit(1);
});
