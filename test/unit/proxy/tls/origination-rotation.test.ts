// Client-certificate rotation for TLS origination (DestinationRule MUTUAL; ISTIO_MUTUAL reads the
// same way from --certs): after the files are replaced on disk, new upstream connections present the
// new certificate without a reload; a half-written rotation keeps the last good context. Real TLS
// on loopback, certificates made by openssl for the test.

import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type tls from 'node:tls';
import t from 'tap';
import { freePort, oneUpstreamConfig, startTestRuntime } from '../../../helpers/gateway';
import { makeCa, makeLeaf, type CertFiles } from '../../../e2e/harness/certs';
import { buildTlsOrigination } from '../../../../proxy/tls/origination';
import type { Cluster } from '../../../../config/compile/snapshot';

t.setTimeout(60_000); // a bound for a hang, not a timed assertion

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-orig-rot-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

let ca: CertFiles;
t.before(async () => {
  ca = await makeCa(dir, 'ca');
});

/** Replace a file the way istio-agent does: write aside, rename over. */
function replace(file: string, from: string): void {
  fs.writeFileSync(file + '.tmp', fs.readFileSync(from));
  fs.renameSync(file + '.tmp', file);
}

/** An HTTPS upstream that requires a client certificate from `ca` and answers with its serial, closing each connection. */
async function mtlsUpstream(t: { teardown(fn: () => unknown): void }, server: CertFiles): Promise<number> {
  const s = https.createServer({ key: fs.readFileSync(server.keyFile), cert: fs.readFileSync(server.certFile), ca: fs.readFileSync(ca.certFile), requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const serial = (req.socket as tls.TLSSocket).getPeerCertificate().serialNumber;
    res.writeHead(200, { 'content-length': String(serial.length), connection: 'close' });
    res.end(serial);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.teardown(() => { s.closeAllConnections(); s.close(); });
  return (s.address() as net.AddressInfo).port;
}

/** The shared "gateway in front of one upstream" config, the upstream reached with MUTUAL origination. */
function config(gwPort: number, upstreamPort: number, certFile: string, keyFile: string): string {
  return oneUpstreamConfig({ gwPort, upstreamPort }) + `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: up, namespace: default }
spec:
  host: up.example
  trafficPolicy:
    tls: { mode: MUTUAL, sni: upstream.test, caCertificates: ${ca.certFile}, clientCertificate: ${certFile}, privateKey: ${keyFile} }
`;
}

function get(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host: '127.0.0.1', port });
    let data = '';
    c.on('data', (d: Buffer) => { data += d.toString('latin1'); });
    c.on('end', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0);
      resolve({ status, body: data.slice(data.indexOf('\r\n\r\n') + 4) });
    });
    c.on('error', reject);
    c.write('GET / HTTP/1.1\r\nhost: up.example\r\nconnection: close\r\n\r\n');
  });
}

function serialOf(certFile: string): string {
  return new X509Certificate(fs.readFileSync(certFile)).serialNumber;
}

t.test('new upstream connections present the rotated client certificate, without a reload', async (t) => {
  const server = await makeLeaf(path.join(dir, 'server'), ca, { cn: 'upstream.test' });
  const v1 = await makeLeaf(path.join(dir, 'v1'), ca, { cn: 'client-v1' });
  const v2 = await makeLeaf(path.join(dir, 'v2'), ca, { cn: 'client-v2' });
  const certFile = path.join(dir, 'client.crt');
  const keyFile = path.join(dir, 'client.key');
  fs.copyFileSync(v1.certFile, certFile);
  fs.copyFileSync(v1.keyFile, keyFile);
  const upstreamPort = await mtlsUpstream(t, server);
  const gwPort = await freePort();
  await startTestRuntime(t, config(gwPort, upstreamPort, certFile, keyFile));

  const first = await get(gwPort);
  t.equal(first.status, 200);
  t.equal(first.body, serialOf(v1.certFile), 'the upstream saw the first client certificate');

  replace(keyFile, v2.keyFile);
  replace(certFile, v2.certFile);
  // origination.ts re-stats the files at most once a second, on a connect: poll, bounded.
  let body = first.body;
  for (let i = 0; i < 40 && body === first.body; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const r = await get(gwPort);
    t.equal(r.status, 200, 'every request is served across the rotation');
    body = r.body;
  }
  t.equal(body, serialOf(v2.certFile), 'new connections present the rotated certificate');
});

t.test('a half-written rotation keeps the last good context until the files match', async (t) => {
  const v1 = await makeLeaf(path.join(dir, 'h1'), ca, { cn: 'client-h1' });
  const v2 = await makeLeaf(path.join(dir, 'h2'), ca, { cn: 'client-h2' });
  const certFile = path.join(dir, 'half.crt');
  const keyFile = path.join(dir, 'half.key');
  fs.copyFileSync(v1.certFile, certFile);
  fs.copyFileSync(v1.keyFile, keyFile);
  const cluster = { tls: { mode: 'MUTUAL', caFile: ca.certFile, certFile, keyFile, subjectAltNames: [], insecureSkipVerify: false, alpn: [], sni: null, autoSni: false } } as unknown as Cluster;
  const o = buildTlsOrigination(cluster, 0);
  const c1 = o.contextAt(0);
  o.sessions.set('k', Buffer.from('session'));
  t.equal(o.contextAt(500), c1, 'within the recheck period the files are not looked at');

  replace(keyFile, v2.keyFile); // the key is new, the certificate not yet: they do not match
  t.equal(o.contextAt(2_000), c1, 'mismatched key and certificate: the last good context stays');
  t.equal(o.sessions.size, 1, 'and so do its sessions');

  replace(certFile, v2.certFile);
  const c2 = o.contextAt(4_000);
  t.not(c2, c1, 'once both files are new, a new context');
  t.equal(o.sessions.size, 0, 'sessions of the old identity are dropped');
  t.equal(o.contextAt(6_000), c2, 'unchanged files: the same context');
});
