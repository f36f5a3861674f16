// The certificate, key and CA files that Gateway and DestinationRule TLS settings name: each must
// exist and parse, else every handshake that needs it fails. A warning when config is loaded (the
// file may appear later: a mounted secret), an error in `sluice validate` (code CERT_FILE), always
// naming the file and the field. Each file is read once per load, however many fields name it.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { ConfigErrorCode } from '../errors';
import type { ConfigMessage } from '../compile/snapshot';
import { Reporter, type Locator } from './schema';
import type { ClientTLSSettings, Resources, ServerTlsSettings, TrafficPolicy } from './types';

type FileKind = 'certificate' | 'private key' | 'CA bundle' | 'CRL';

/** The problem with `file` as a `kind`, or null when it reads and parses. */
function fileProblem(file: string, kind: FileKind): string | null {
  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return `${kind} file ${file} cannot be read (${e.code ?? e.message}): TLS handshakes that need it fail`;
  }
  try {
    if (kind === 'private key') crypto.createPrivateKey(pem);
    else if (kind === 'CRL') {
      if (!pem.includes('-----BEGIN X509 CRL-----')) throw new Error('no PEM "X509 CRL" block');
    } else {
      const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
      if (blocks === null) throw new Error('no PEM CERTIFICATE block');
      for (const b of blocks) new crypto.X509Certificate(b);
    }
  } catch (err) {
    return `${kind} file ${file} does not parse (${(err as Error).message}): TLS handshakes that need it fail`;
  }
  return null;
}

/** `uncheckedDir`: files under it exist only on the proxy's machine (the mounted workload certificates). */
export function checkCertFiles(res: Resources, loc: Locator, out: ConfigMessage[], uncheckedDir?: string): void {
  const seen = new Map<string, string | null>();
  const skip = uncheckedDir === undefined ? null : uncheckedDir.replace(/\/*$/, '/');
  const check = (rep: Reporter, holder: object, fieldName: string, file: string | undefined, kind: FileKind): void => {
    if (file === undefined || file === '' || (skip !== null && file.startsWith(skip))) return;
    const key = `${kind}\0${file}`;
    if (!seen.has(key)) seen.set(key, fileProblem(file, kind));
    const problem = seen.get(key)!;
    if (problem !== null) rep.warn(ConfigErrorCode.CERT_FILE, loc.at(holder, fieldName), problem);
  };
  for (const g of res.gateways) {
    const rep = new Reporter(out, g.origin, `Gateway/${g.metadata.name}`);
    for (const s of g.spec.servers ?? []) {
      const tls: ServerTlsSettings | undefined = s?.tls;
      if (tls === undefined || tls.mode === 'PASSTHROUGH' || tls.mode === 'AUTO_PASSTHROUGH' || tls.mode === 'ISTIO_MUTUAL' || tls.mode === undefined) continue;
      check(rep, tls, 'serverCertificate', tls.serverCertificate, 'certificate');
      check(rep, tls, 'privateKey', tls.privateKey, 'private key');
      check(rep, tls, 'caCertificates', tls.caCertificates, 'CA bundle');
      check(rep, tls, 'caCrl', tls.caCrl, 'CRL');
      for (const c of tls.tlsCertificates ?? []) {
        if (c === null) continue;
        check(rep, c, 'serverCertificate', c.serverCertificate, 'certificate');
        check(rep, c, 'privateKey', c.privateKey, 'private key');
        check(rep, c, 'caCertificates', c.caCertificates, 'CA bundle');
      }
    }
  }
  for (const dr of res.destinationRules) {
    const rep = new Reporter(out, dr.origin, `DestinationRule/${dr.metadata.name}`);
    const client = (tls: ClientTLSSettings | undefined): void => {
      if (tls === undefined || (tls.mode !== 'SIMPLE' && tls.mode !== 'MUTUAL')) return;
      check(rep, tls, 'clientCertificate', tls.clientCertificate, 'certificate');
      check(rep, tls, 'privateKey', tls.privateKey, 'private key');
      check(rep, tls, 'caCertificates', tls.caCertificates, 'CA bundle');
      check(rep, tls, 'caCrl', tls.caCrl, 'CRL');
    };
    const policy = (p: TrafficPolicy | undefined): void => {
      client(p?.tls);
      for (const pl of p?.portLevelSettings ?? []) client(pl?.tls);
    };
    policy(dr.spec.trafficPolicy);
    for (const s of dr.spec.subsets ?? []) policy(s?.trafficPolicy);
  }
}
