// TLS additions to the egress world of egress-mesh.ts: a mesh CA (Istio's citadel stand-in) with the
// sidecar's and the gateway's workload identities (--certs layout), and copies of the seed samples
// with certificate paths pointed at this test's files, since the samples name /etc/certs and the
// seeds' external host is trusted through system roots, which a test CA is not.

import fs from 'node:fs';
import path from 'node:path';
import { makeCa, makeWorkloadCerts, type CertFiles, type WorkloadCerts } from './harness/certs';
import { PROXY_UID } from './harness/prereqs';
import { sample, type EgressMesh } from './egress-mesh';

export const SIDECAR_SPIFFE = 'spiffe://cluster.local/ns/default/sa/sleep';
export const GATEWAY_SPIFFE = 'spiffe://cluster.local/ns/istio-system/sa/istio-egressgateway-service-account';

export interface MeshIdentities {
  readonly meshCa: CertFiles;
  readonly sidecar: WorkloadCerts;
  readonly gateway: WorkloadCerts;
}

/** One mesh CA, the sidecar's and the gateway's workload certificates (cert-chain.pem, key.pem, root-cert.pem). */
export async function makeMeshIdentities(mesh: EgressMesh): Promise<MeshIdentities> {
  const meshCa = await makeCa(path.join(mesh.dir, 'mesh-ca'), 'istio-ca');
  const sidecar = await makeWorkloadCerts(path.join(mesh.dir, 'certs-sidecar'), meshCa, SIDECAR_SPIFFE);
  const gateway = await makeWorkloadCerts(path.join(mesh.dir, 'certs-gateway'), meshCa, GATEWAY_SPIFFE);
  return { meshCa, sidecar, gateway };
}

/**
 * Copy `config/samples/<name>` into this test's directory, rewriting the samples' `/etc/certs/` to
 * `certsDir` (the gateway's identity) and appending `extra` YAML documents; returns the directory.
 */
export function sampleCopy(mesh: EgressMesh, name: string, opts: { certsDir?: string; only?: string[]; extra?: string; edit?: (file: string, text: string) => string } = {}): string {
  const out = path.join(mesh.dir, 'config-' + name + '-' + fs.readdirSync(mesh.dir).length);
  fs.mkdirSync(out);
  fs.chmodSync(out, 0o755);
  for (const f of fs.readdirSync(sample(name))) {
    if (opts.only !== undefined && !opts.only.includes(f)) continue;
    let text = fs.readFileSync(path.join(sample(name), f), 'utf8');
    if (opts.certsDir !== undefined) text = text.replaceAll('/etc/certs/', opts.certsDir.replace(/\/?$/, '/'));
    if (opts.edit !== undefined) text = opts.edit(f, text);
    fs.writeFileSync(path.join(out, f), text, { mode: 0o644 });
  }
  if (opts.extra !== undefined) fs.writeFileSync(path.join(out, 'zz-test-extra.yaml'), opts.extra, { mode: 0o644 });
  return out;
}

/** curl from the app host as UID 1337: the capture rules leave that UID alone, so it goes straight to the gateway. */
export function curlBypassingSidecar(mesh: EgressMesh, args: string[]) {
  return mesh.topo.exec('app', ['curl', '-sS', '--max-time', '5', ...args], { uid: PROXY_UID, timeoutMs: 10_000 });
}
