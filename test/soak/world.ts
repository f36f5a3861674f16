// The soak's world as network namespaces, its config, and the processes in it:
//
//   app 198.18.11.2 ──front── gateway host 198.18.11.1 | 198.18.12.1 ──back── sink 198.18.12.10 (TCP 7000, HTTP 8080)
//   (sidecar + driver)        (egress gateway :80 HTTP, :7001 TCP)      └──── hole 198.18.12.20 (drops every SYN)
//
// The gateway host forwards, so the sidecar reaches the sink directly for the sidecar-only routes.
// Both proxies run with --concurrency 2 (a worker can be killed while the other serves) and follow
// the same config directory, which the soak rewrites every second.

import fs from 'node:fs';
import path from 'node:path';
import { distFile, sluiceArgv } from '../e2e/harness/paths';
import { PROXY_UID } from '../e2e/harness/prereqs';
import type { ProcHandle } from '../e2e/harness/proc-handle';
import { Topology, type TeardownHost } from '../e2e/harness/topology';
import type { ProxyName, Target } from './plan';

export const APP_IP = '198.18.11.2';
export const GW_IP = '198.18.11.1';
export const SINK_IP = '198.18.12.10';
export const HOLE_IP = '198.18.12.20';
const RELAY_IP = '198.18.12.30'; // relay.test: nothing there, the sidecar routes it to the gateway by Host
const CHAOS_IP = '198.18.12.40';

export const TARGETS: readonly Target[] = [
  { name: 'tcp-sidecar', kind: 'tcp', host: SINK_IP, port: 7000, hole: false, proxies: ['sidecar'], weight: 25 },
  { name: 'tcp-gateway', kind: 'tcp', host: GW_IP, port: 7001, hole: false, proxies: ['sidecar', 'gateway'], weight: 25 },
  { name: 'http-sidecar', kind: 'http', host: SINK_IP, port: 8080, hostHeader: 'sink.test:8080', hole: false, proxies: ['sidecar'], weight: 20 },
  { name: 'http-gateway', kind: 'http', host: RELAY_IP, port: 80, hostHeader: 'relay.test', hole: false, proxies: ['sidecar', 'gateway'], weight: 20 },
  { name: 'tcp-hole', kind: 'tcp', host: HOLE_IP, port: 7000, hole: true, proxies: ['sidecar'], weight: 5 },
  { name: 'http-hole', kind: 'http', host: HOLE_IP, port: 8080, hostHeader: 'hole.test:8080', hole: true, proxies: ['sidecar'], weight: 5 },
];

const CONFIG = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: sink }
spec:
  hosts: [sink.test]
  addresses: [${SINK_IP}]
  ports: [{ number: 7000, name: tcp, protocol: TCP }, { number: 8080, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: ${SINK_IP} }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: hole }
spec:
  hosts: [hole.test]
  addresses: [${HOLE_IP}]
  ports: [{ number: 7000, name: tcp, protocol: TCP }, { number: 8080, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: ${HOLE_IP} }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: hole }
spec:
  host: hole.test
  trafficPolicy: { connectionPool: { tcp: { connectTimeout: 500ms } } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: soak-gw }
spec:
  hosts: [soak-gw.test]
  location: MESH_INTERNAL
  addresses: [${GW_IP}]
  ports: [{ number: 80, name: http, protocol: HTTP }, { number: 7001, name: tcp, protocol: TCP }]
  resolution: STATIC
  endpoints: [{ address: ${GW_IP} }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: relay }
spec:
  hosts: [relay.test]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: soak-gw }
spec:
  selector: { istio: egressgateway }
  servers:
  - port: { number: 80, name: http, protocol: HTTP }
    hosts: ["*"]
  - port: { number: 7001, name: tcp, protocol: TCP }
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: relay-http }
spec:
  hosts: [relay.test]
  gateways: [mesh, soak-gw]
  http:
  - match: [{ gateways: [mesh] }]
    route: [{ destination: { host: soak-gw.test, port: { number: 80 } } }]
  - match: [{ gateways: [soak-gw] }]
    route: [{ destination: { host: sink.test, port: { number: 8080 } } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: relay-tcp }
spec:
  hosts: ["*"]
  gateways: [soak-gw]
  tcp:
  - match: [{ port: 7001 }]
    route: [{ destination: { host: sink.test, port: { number: 7000 } } }]
`;

/** The file the soak rewrites every second: a valid change (n even) or an invalid one (n odd). */
export function chaosConfig(n: number): string {
  const port = n % 2 === 0 ? String(9000 + ((n / 2) % 50)) : '"not-a-port"';
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: chaos }
spec:
  hosts: [chaos.test]
  addresses: [${CHAOS_IP}]
  ports: [{ number: ${port}, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: ${CHAOS_IP} }]
`;
}

export interface World {
  readonly topo: Topology;
  readonly configDir: string;
  readonly sink: ProcHandle;
  readonly proxies: Record<ProxyName, ProcHandle>;
}

function writeAtomically(file: string, text: string): void {
  const tmp = file + '.tmp';
  fs.writeFileSync(tmp, text, { mode: 0o644 });
  fs.renameSync(tmp, file);
}

export function writeChaos(configDir: string, n: number): void {
  writeAtomically(path.join(configDir, 'chaos.yaml'), chaosConfig(n));
}

export async function buildWorld(t: TeardownHost, dir: string, extraProxyArgs: readonly string[] = []): Promise<World> {
  const configDir = path.join(dir, 'config');
  fs.mkdirSync(configDir, { recursive: true, mode: 0o755 });
  writeAtomically(path.join(configDir, 'soak.yaml'), CONFIG);
  writeChaos(configDir, 0);
  const topo = await Topology.create(
    t,
    [{ name: 'front', cidr: '198.18.11.0/24' }, { name: 'back', cidr: '198.18.12.0/24' }],
    [
      { name: 'app', nets: [{ net: 'front', address: APP_IP }], defaultVia: GW_IP },
      { name: 'gateway', nets: [{ net: 'front', address: GW_IP }, { net: 'back', address: '198.18.12.1' }], forwarding: true },
      { name: 'sink', nets: [{ net: 'back', address: SINK_IP }], routes: [{ to: '198.18.11.0/24', via: '198.18.12.1' }] },
      { name: 'hole', nets: [{ net: 'back', address: HOLE_IP }], routes: [{ to: '198.18.11.0/24', via: '198.18.12.1' }] },
    ],
  );
  // The blackhole: every SYN is dropped, so a connect neither succeeds nor is refused.
  const drop = await topo.exec('hole', ['iptables', '-A', 'INPUT', '-p', 'tcp', '--syn', '-j', 'DROP']);
  if (drop.code !== 0) throw new Error(`soak: iptables DROP in the hole namespace failed: ${drop.stderr}`);
  const sink = topo.spawn('sink', [process.execPath, distFile('test/soak/sink.js')], { name: 'sink' });
  await sink.waitForLine(/^READY$/, 10_000);
  const common = ['--namespace', 'default', '--config', configDir, '--access-log', 'stdout', '--concurrency', '2', ...extraProxyArgs];
  const gateway = topo.spawn('gateway', sluiceArgv(['run', '--role', 'gateway', '--labels', 'istio=egressgateway', ...common]), { uid: PROXY_UID, name: 'gateway' });
  await gateway.waitForLine(/sluice is live/, 30_000);
  const rules = await topo.exec('app', sluiceArgv(['iptables']));
  if (rules.code !== 0) throw new Error(`soak: sluice iptables failed: ${rules.stderr}${rules.stdout}`);
  const sidecar = topo.spawn('app', sluiceArgv(['run', '--role', 'sidecar', ...common]), { uid: PROXY_UID, name: 'sidecar' });
  await sidecar.waitForLine(/sluice is live/, 30_000);
  return { topo, configDir, sink, proxies: { sidecar, gateway } };
}

/** Host namespace of each proxy (its admin listens on that namespace's loopback :15000). */
export const PROXY_HOST: Record<ProxyName, string> = { sidecar: 'app', gateway: 'gateway' };
