// The seeds' egress world as network namespaces:
//
//   app (198.18.1.2) ──mesh 198.18.1.0/24── gateway (198.18.1.1 | 198.18.2.1) ──internet 198.18.2.0/24── external (198.18.2.10)
//
// The app's default route points at the gateway host. With `forwarding: false` the gateway host does
// not route packets, so the app can reach the "internet" only through sluice on the gateway (S5);
// with `forwarding: true` it routes, as a node with a public path would (S1, and S2's direct HTTPS).
// Names resolve per host through /etc/hosts, as DNS would in a cluster.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeCa, makeLeaf, type CertFiles } from './harness/certs';
import { PROJECT_ROOT, serverArgv, sluiceArgv } from './harness/paths';
import { PROXY_UID } from './harness/prereqs';
import type { ProcHandle } from './harness/proc-handle';
import { Topology, type TeardownHost } from './harness/topology';

export const EXTERNAL_IP = '198.18.2.10';
export const GATEWAY_MESH_IP = '198.18.1.1';
export const GATEWAY_SERVICE = 'istio-egressgateway.istio-system.svc.cluster.local';

export interface EgressMesh {
  readonly topo: Topology;
  readonly dir: string;
  readonly ca: CertFiles;
  readonly external: ProcHandle;
}

export function sample(name: string): string {
  return path.join(PROJECT_ROOT, 'config', 'samples', name);
}

export async function buildEgressMesh(t: TeardownHost, opts: { forwarding: boolean }): Promise<EgressMesh> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-e2e-'));
  fs.chmodSync(dir, 0o755);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const topo = await Topology.create(
    t,
    [
      { name: 'mesh', cidr: '198.18.1.0/24' },
      { name: 'internet', cidr: '198.18.2.0/24' },
    ],
    [
      {
        name: 'app',
        nets: [{ net: 'mesh', address: '198.18.1.2' }],
        defaultVia: GATEWAY_MESH_IP,
        // unknown.example: a host no ServiceEntry declares (ALLOW_ANY / REGISTRY_ONLY tests).
        hosts: { 'edition.cnn.com': EXTERNAL_IP, 'unknown.example': EXTERNAL_IP, [GATEWAY_SERVICE]: GATEWAY_MESH_IP },
      },
      {
        name: 'gateway',
        nets: [
          { net: 'mesh', address: GATEWAY_MESH_IP },
          { net: 'internet', address: '198.18.2.1' },
        ],
        forwarding: opts.forwarding,
        hosts: { 'edition.cnn.com': EXTERNAL_IP, [GATEWAY_SERVICE]: GATEWAY_MESH_IP },
      },
      {
        name: 'external',
        nets: [{ net: 'internet', address: EXTERNAL_IP }],
        routes: [{ to: '198.18.1.0/24', via: '198.18.2.1' }],
      },
    ],
  );
  const ca = await makeCa(dir, 'test-root');
  const leaf = await makeLeaf(dir, ca, { cn: 'edition.cnn.com', dnsNames: ['edition.cnn.com'] });
  const external = topo.spawn('external', serverArgv('external', ['--http-port', '80', '--https-port', '443', '--cert', leaf.certFile, '--key', leaf.keyFile]), { name: 'external' });
  await external.waitForLine(/READY/, 10_000);
  return { topo, dir, ca, external };
}

/** sluice as the egress gateway (UID 1337, labels istio=egressgateway), admin on its loopback :15000. */
export async function startGateway(mesh: EgressMesh, configDir: string, extra: string[] = []): Promise<ProcHandle> {
  const p = mesh.topo.spawn('gateway', sluiceArgv(['run', '--role', 'gateway', '--labels', 'istio=egressgateway', '--namespace', 'istio-system', '--config', configDir, '--access-log', 'stdout', ...extra]), { uid: PROXY_UID, name: 'gateway' });
  await p.waitForLine(/sluice is live/, 15_000);
  return p;
}

/** Install the capture rules in the app host (as istio-init, root) and run the sidecar as UID 1337. */
export async function startSidecar(mesh: EgressMesh, configDir: string, extra: string[] = []): Promise<ProcHandle> {
  const rules = await mesh.topo.exec('app', sluiceArgv(['iptables']));
  if (rules.code !== 0) throw new Error(`sluice iptables failed (${rules.code}): ${rules.stderr}${rules.stdout}`);
  const p = mesh.topo.spawn('app', sluiceArgv(['run', '--role', 'sidecar', '--config', configDir, '--access-log', 'stdout', ...extra]), { uid: PROXY_UID, name: 'sidecar' });
  await p.waitForLine(/sluice is live/, 15_000);
  return p;
}

/** GET an admin path of the sluice running in `host` (from inside that host: admin is on loopback). */
export async function admin(mesh: EgressMesh, host: string, p: string): Promise<string> {
  const r = await mesh.topo.exec(host, ['curl', '-s', '--max-time', '5', 'http://127.0.0.1:15000' + p]);
  if (r.code !== 0) throw new Error(`admin ${p} on ${host}: curl exit ${r.code} ${r.stderr}`);
  return r.stdout;
}

/** Value of one `/stats` counter line, or null when absent. */
export async function stat(mesh: EgressMesh, host: string, name: string): Promise<number | null> {
  const text = await admin(mesh, host, '/stats');
  for (const line of text.split('\n')) {
    if (line.startsWith(name + ': ')) return Number(line.slice(name.length + 2));
  }
  return null;
}

/** Distinct client connections (ip:port) the external stand-in saw for requests matching `re`. */
export function externalConnections(mesh: EgressMesh, re: RegExp): Set<string> {
  const out = new Set<string>();
  for (const line of mesh.external.linesMatching(re)) {
    const m = /from=(\S+)/.exec(line);
    if (m) out.add(m[1]!);
  }
  return out;
}
