// Sidecar capture cost: short TCP connections/s through kernel REDIRECT + SO_ORIGINAL_DST into a
// sluice sidecar, against the same traffic sent straight to a sluice gateway port, in a network
// namespace this bench creates (test/e2e/harness: addresses in 198.18.0.0/15 only).
//
//   app  198.18.40.2   sluice sidecar (uid 1337, capture on 15001, `sluice iptables` rules)
//                      sluice gateway (uid 1337, TCP server on 127.0.0.1:18000 -> ext:7000)
//                      the load driver (root: its connections to ext are captured; to 127.0.0.1
//                      they are not, as Istio's rules leave loopback alone)
//   ext  198.18.40.10  upstream.ts command server on :7000
//
// Three runs of the same driver: captured (-> sidecar -> ext), gateway port (-> gateway -> ext), and
// direct (as uid 1337, which the rules exclude: no proxy at all). Both proxies run the same build,
// the same relay and the same one veth hop upstream, so the ratio isolates REDIRECT + original-dst +
// the sidecar's listener lookup against a plain listener. `rounds` interleaved rounds (round k
// starts at the k-th of the three), each path keeping its median round: one pass of each swung the
// ratio from 0.68x to 0.90x on this shared box.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Topology } from '../../test/e2e/harness/topology';
import { PROXY_UID } from '../../test/e2e/harness/prereqs';
import { distFile, sluiceArgv } from '../../test/e2e/harness/paths';
import type { TcpLoadResult } from './tcp-load';
import { procCpuSeconds } from './peers';

export interface CaptureRun {
  load: TcpLoadResult;
  proxyCpuUsPerConn: number | null;
  /** conn/s of every round, in the order run (the median one is `load`) */
  rounds: number[];
}
export interface CaptureResult { captured: CaptureRun; gatewayPort: CaptureRun; direct: CaptureRun }

const APP_IP = '198.18.40.2';
const EXT_IP = '198.18.40.10';
const EXT_PORT = 7000;
const GW_PORT = 18000;

function sidecarConfig(): string {
  return `apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: { name: ext, namespace: default }
spec:
  hosts: [ext.bench]
  addresses: [${EXT_IP}/32]
  ports: [{ number: ${EXT_PORT}, name: tcp, protocol: TCP }]
  resolution: STATIC
  endpoints: [{ address: ${EXT_IP} }]
`;
}

function gatewayConfig(): string {
  return `${sidecarConfig()}---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: { name: bench-gw, namespace: default }
spec:
  selector: { istio: egressgateway }
  servers:
  - port: { number: ${GW_PORT}, name: tcp, protocol: TCP }
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: ext, namespace: default }
spec:
  hosts: ["*"]
  gateways: [bench-gw]
  tcp:
  - match: [{ port: ${GW_PORT} }]
    route: [{ destination: { host: ext.bench, port: { number: ${EXT_PORT} } } }]
`;
}

export async function runCapture(o: { durationS: number; parallel: number; rounds: number; log: (s: string) => void }): Promise<CaptureResult> {
  const teardowns: (() => unknown)[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-capture-'));
  fs.chmodSync(dir, 0o755); // uid 1337 reads the config
  try {
    const topo = await Topology.create({ teardown: (fn) => teardowns.push(fn) },
      [{ name: 'mesh', cidr: '198.18.40.0/24' }],
      [{ name: 'app', nets: [{ net: 'mesh', address: APP_IP }] },
        { name: 'ext', nets: [{ net: 'mesh', address: EXT_IP }] }]);
    teardowns.push(() => topo.destroy());
    const up = topo.spawn('ext', [process.execPath, distFile('bench/macro/upstream.js'), JSON.stringify({ host: EXT_IP, tcpPort: EXT_PORT, only: ['tcp'] })], { uid: PROXY_UID, name: 'upstream' });
    await up.waitForLine(/"ready":true/, 10_000);

    const rules = await topo.exec('app', sluiceArgv(['iptables']));
    if (rules.code !== 0) throw new Error(`sluice iptables failed: ${rules.stderr}`);
    const sideCfg = path.join(dir, 'sidecar.yaml');
    const gwCfg = path.join(dir, 'gateway.yaml');
    fs.writeFileSync(sideCfg, sidecarConfig(), { mode: 0o644 });
    fs.writeFileSync(gwCfg, gatewayConfig(), { mode: 0o644 });
    const common = ['--prometheus-port', 'off', '--health-port', 'off', '--access-log', 'off'];
    const sidecar = topo.spawn('app', sluiceArgv(['run', '--role', 'sidecar', '--config', sideCfg, '--admin', '127.0.0.1:15000', ...common]), { uid: PROXY_UID, name: 'sidecar', env: { SLUICE_LOG_LEVEL: 'info' } });
    const gateway = topo.spawn('app', sluiceArgv(['run', '--role', 'gateway', '--labels', 'istio=egressgateway', '--config', gwCfg, '--admin', '127.0.0.1:15100', ...common]), { uid: PROXY_UID, name: 'gateway', env: { SLUICE_LOG_LEVEL: 'info' } });
    await sidecar.waitForLine(/sluice is live/, 15_000);
    await gateway.waitForLine(/sluice is live/, 15_000);

    type Pass = Omit<CaptureRun, 'rounds'>;
    const drive = async (host: string, port: number, uid: number | undefined, proxyPid: number | null, what: string): Promise<Pass> => {
      const cpu0 = proxyPid === null ? 0 : procCpuSeconds(proxyPid);
      const args = JSON.stringify({ mode: 'short', host, port, durationMs: o.durationS * 1000, warmupMs: 1000, parallel: o.parallel });
      const r = await topo.exec('app', [process.execPath, distFile('bench/macro/tcp-load.js'), args], { timeoutMs: (o.durationS + 40) * 1000, ...(uid !== undefined ? { uid } : {}) });
      if (r.code !== 0) throw new Error(`capture driver (${what}) failed: ${r.stderr}`);
      const load = JSON.parse(r.stdout.trim().split('\n').pop()!) as TcpLoadResult;
      const cpu = proxyPid === null ? null : ((procCpuSeconds(proxyPid) - cpu0) * 1e6) / Math.max(1, load.totalUnits);
      o.log(`  capture/${what}: ${load.rate.toFixed(0)} conn/s, errors ${load.errors}${cpu === null ? '' : `, proxy CPU ${cpu.toFixed(0)} µs/conn`}`);
      return { load, proxyCpuUsPerConn: cpu };
    };
    const paths: readonly (() => Promise<Pass>)[] = [
      () => drive(EXT_IP, EXT_PORT, PROXY_UID, null, 'direct'),
      () => drive(EXT_IP, EXT_PORT, undefined, sidecar.pid, 'captured'),
      () => drive('127.0.0.1', GW_PORT, undefined, gateway.pid, 'gateway-port'),
    ];
    const passes: Pass[][] = paths.map(() => []);
    for (let k = 0; k < o.rounds; k++) {
      for (let i = 0; i < paths.length; i++) {
        const j = (i + k) % paths.length;
        passes[j]!.push(await paths[j]!());
      }
    }
    const [direct, captured, gatewayPort] = passes.map(medianRun) as [CaptureRun, CaptureRun, CaptureRun];
    return { captured, gatewayPort, direct };
  } finally {
    for (const fn of teardowns.reverse()) await fn();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The median pass by conn/s, with every pass's rate. */
function medianRun(passes: readonly Omit<CaptureRun, 'rounds'>[]): CaptureRun {
  const sorted = [...passes].sort((a, b) => a.load.rate - b.load.rate);
  return { ...sorted[(sorted.length - 1) >> 1]!, rounds: passes.map((p) => p.load.rate) };
}
