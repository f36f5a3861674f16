// Test PKI made with the openssl CLI: a CA, leaf certificates (DNS / SPIFFE URI / IP SANs), and the
// Istio workload identity layout (cert-chain.pem, key.pem, root-cert.pem) that `sluice --certs DIR` reads.
//
// ECDSA P-256 and a one-day validity: fast to generate, and nothing made here is worth keeping.
// Files are world-readable on purpose: the sidecar and gateway run as uid 1337 and must read them;
// these are throwaway test keys, not secrets.

import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { mustRun } from './run';

export interface CertFiles {
  certFile: string;
  keyFile: string;
}

export interface LeafOptions {
  cn: string;
  dnsNames?: string[];
  uris?: string[]; // spiffe://cluster.local/ns/NS/sa/SA
  ips?: string[];
  /** Base name of the files (default: derived from cn). */
  name?: string;
}

export interface WorkloadCerts {
  dir: string;
  certChainFile: string; // cert-chain.pem
  keyFile: string; // key.pem
  rootCertFile: string; // root-cert.pem
}

const VALIDITY_DAYS = '1';
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function fileBase(name: string): string {
  return name.replace(/[^A-Za-z0-9.-]+/g, '_');
}

function readableDir(dir: string): void {
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
}

function makeReadable(...files: string[]): void {
  for (const f of files) chmodSync(f, 0o644);
}

// A random serial per certificate: two leaves for the same CN from one CA must not share a serial
// (OpenSSL clients reject that as a possible forgery).
function serial(): string {
  return '0x' + randomBytes(12).toString('hex');
}

/** A self-signed CA (basicConstraints CA:TRUE, keyCertSign) in `dir`. */
export async function makeCa(dir: string, name: string): Promise<CertFiles> {
  readableDir(dir);
  const base = path.join(dir, fileBase(name));
  const certFile = `${base}-ca.crt`;
  const keyFile = `${base}-ca.key`;
  await mustRun('openssl', [
    'req', '-x509', ...EC_KEY, '-keyout', keyFile, '-out', certFile, '-days', VALIDITY_DAYS,
    '-subj', `/O=sluice-e2e/CN=${name}`, '-set_serial', serial(),
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-addext', 'subjectKeyIdentifier=hash',
  ]);
  makeReadable(certFile, keyFile);
  return { certFile, keyFile };
}

/**
 * A leaf signed by `ca`, usable as server and client certificate. Without any SAN option the SAN is
 * DNS:<cn>, since clients match names against SANs only.
 */
export async function makeLeaf(dir: string, ca: CertFiles, opts: LeafOptions): Promise<CertFiles> {
  readableDir(dir);
  const base = path.join(dir, fileBase(opts.name ?? opts.cn));
  const certFile = `${base}.crt`;
  const keyFile = `${base}.key`;
  const csrFile = `${base}.csr`;
  const extFile = `${base}.ext`;
  const sans = [
    ...(opts.dnsNames ?? []).map((d) => `DNS:${d}`),
    ...(opts.uris ?? []).map((u) => `URI:${u}`),
    ...(opts.ips ?? []).map((i) => `IP:${i}`),
  ];
  if (sans.length === 0) sans.push(`DNS:${opts.cn}`);
  writeFileSync(
    extFile,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth,clientAuth',
      `subjectAltName=${sans.join(',')}`,
      'authorityKeyIdentifier=keyid',
      '',
    ].join('\n'),
  );
  await mustRun('openssl', ['req', '-new', ...EC_KEY, '-keyout', keyFile, '-out', csrFile, '-subj', `/O=sluice-e2e/CN=${opts.cn}`]);
  await mustRun('openssl', [
    'x509', '-req', '-in', csrFile, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-set_serial', serial(),
    '-days', VALIDITY_DAYS, '-extfile', extFile, '-out', certFile,
  ]);
  makeReadable(certFile, keyFile);
  return { certFile, keyFile };
}

/**
 * An Istio workload identity in `dir`: cert-chain.pem (leaf with URI SAN `spiffeId`), key.pem and
 * root-cert.pem (the CA), the files Istio mounts at /etc/certs and `sluice --certs DIR` expects.
 */
export async function makeWorkloadCerts(dir: string, ca: CertFiles, spiffeId: string): Promise<WorkloadCerts> {
  if (!spiffeId.startsWith('spiffe://')) throw new Error(`e2e: not a SPIFFE id: ${spiffeId}`);
  readableDir(dir);
  const leaf = await makeLeaf(path.join(dir, '.work'), ca, { cn: spiffeId.split('/').pop() || 'workload', uris: [spiffeId], name: 'leaf' });
  const certChainFile = path.join(dir, 'cert-chain.pem');
  const keyFile = path.join(dir, 'key.pem');
  const rootCertFile = path.join(dir, 'root-cert.pem');
  writeFileSync(certChainFile, readFileSync(leaf.certFile));
  writeFileSync(keyFile, readFileSync(leaf.keyFile));
  writeFileSync(rootCertFile, readFileSync(ca.certFile));
  makeReadable(certChainFile, keyFile, rootCertFile);
  return { dir, certChainFile, keyFile, rootCertFile };
}
