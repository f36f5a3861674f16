// A real in-process gateway on loopback with TLS on both sides: certificate rotation on a terminating
// port (new connections get the new certificate, an open one keeps working), plain HTTP sent to that
// port, and TLS origination failures as the access log shows them (503 UF,URX + UPSTREAM_TRANSPORT_FAILURE_REASON).

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { freePort, rawExchange, startTestRuntime } from '../../../helpers/gateway';
import { makeCa, makeLeaf, type CertFiles } from '../../../e2e/harness/certs';

t.setTimeout(60_000); // a bound for a hang, not a timed assertion

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-gw-tls-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

let ca: CertFiles;
let otherCa: CertFiles;
t.before(async () => {
  ca = await makeCa(dir, 'ca');
  otherCa = await makeCa(dir, 'other-ca');
});

function config(httpsPort: number, httpPort: number, upstreamPort: number, certFile: string, keyFile: string, upstreamCa: string): string {
  return `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: istio-system }
spec:
  selector: { istio: egressgateway }
  servers:
  - port: { number: ${httpsPort}, name: https, protocol: HTTPS }
    hosts: [upstream.test]
    tls: { mode: SIMPLE, serverCertificate: ${certFile}, privateKey: ${keyFile} }
  - port: { number: ${httpPort}, name: http, protocol: HTTP }
    hosts: [upstream.test]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: upstream, namespace: istio-system }
spec:
  hosts: [upstream.test]
  ports: [{ number: ${upstreamPort}, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1 }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: upstream, namespace: istio-system }
spec:
  host: upstream.test
  trafficPolicy:
    tls: { mode: SIMPLE, sni: upstream.test, caCertificates: ${upstreamCa} }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: routes, namespace: istio-system }
spec:
  hosts: [upstream.test]
  gateways: [gw]
  http:
  - match: [{ port: ${httpsPort} }]
    directResponse: { status: 200, body: { string: ok } }
  - route: [{ destination: { host: upstream.test, port: { number: ${upstreamPort} } } }]
`;
}

/** One HTTP/1.1 request on an open socket; resolves with the response head + body (Content-Length framed). */
function request(s: net.Socket, p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    const onData = (c: Buffer) => {
      data += c.toString('latin1');
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = Number(/content-length: (\d+)/i.exec(data.slice(0, end))?.[1] ?? 0);
      if (data.length >= end + 4 + len) {
        s.removeListener('data', onData);
        s.removeListener('error', reject);
        resolve(data);
      }
    };
    s.on('data', onData);
    s.once('error', reject);
    s.write(`GET ${p} HTTP/1.1\r\nhost: upstream.test\r\n\r\n`);
  });
}

function connectTls(port: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'upstream.test', ca: fs.readFileSync(ca.certFile) }, () => resolve(s));
    s.once('error', reject);
  });
}

t.test('certificate rotation: new connections get the new certificate, an open connection keeps working', async (t) => {
  const [httpsPort, httpPort, upstreamPort] = [await freePort(), await freePort(), await freePort()];
  const first = await makeLeaf(path.join(dir, 'v1'), ca, { cn: 'upstream.test' });
  const certFile = path.join(dir, 'server.crt');
  const keyFile = path.join(dir, 'server.key');
  fs.copyFileSync(first.certFile, certFile);
  fs.copyFileSync(first.keyFile, keyFile);
  const gw = await startTestRuntime(t, config(httpsPort, httpPort, upstreamPort, certFile, keyFile, ca.certFile));

  const open = await connectTls(httpsPort);
  t.teardown(() => open.destroy());
  const serial1 = open.getPeerCertificate().serialNumber;
  t.match(await request(open, '/a'), /^HTTP\/1\.1 200 [\s\S]*\r\n\r\nok$/, 'served over the first certificate');

  // Rotate as cert-manager / istio-agent do: write new files (key first, then the certificate).
  const second = await makeLeaf(path.join(dir, 'v2'), ca, { cn: 'upstream.test' });
  fs.writeFileSync(keyFile + '.tmp', fs.readFileSync(second.keyFile));
  fs.renameSync(keyFile + '.tmp', keyFile);
  fs.writeFileSync(certFile + '.tmp', fs.readFileSync(second.certFile));
  fs.renameSync(certFile + '.tmp', certFile);

  // server-contexts.ts re-stats the files at most once a second: poll new connections, bounded.
  let serial2 = serial1;
  for (let i = 0; i < 40 && serial2 === serial1; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const s = await connectTls(httpsPort);
    serial2 = s.getPeerCertificate().serialNumber;
    if (serial2 !== serial1) t.match(await request(s, '/b'), /^HTTP\/1\.1 200 /, 'a new connection is served with the new certificate');
    s.destroy();
  }
  t.not(serial2, serial1, 'new connections present the rotated certificate');
  t.equal(fs.readFileSync(certFile, 'utf8'), fs.readFileSync(second.certFile, 'utf8'), '(the one now on disk)');
  t.match(await request(open, '/c'), /^HTTP\/1\.1 200 [\s\S]*\r\n\r\nok$/, 'the connection opened before the rotation still works');
  t.equal(open.getPeerCertificate().serialNumber, serial1, 'on its original certificate');
  // (Polling connections closed right after the client's handshake may be reset before the server
  // reads the client's Finished: only the two that carried a request are sure to count.)
  t.ok(gw.stat('listener.0.0.0.0_' + httpsPort + '.ssl.handshake')! >= 2, 'listener ssl.handshake counted');
  t.equal(gw.stat('listener.0.0.0.0_' + httpsPort + '.ssl.no_certificate'), gw.stat('listener.0.0.0.0_' + httpsPort + '.ssl.handshake'), 'SIMPLE: every handshake is one without a client certificate (Envoy\'s no_certificate)');
});

t.test('plain HTTP to a TLS-terminating port is closed and logged; TLS origination failures are 503 UF,URX with the TLS reason', async (t) => {
  const [httpsPort, httpPort, upstreamPort] = [await freePort(), await freePort(), await freePort()];
  const leaf = await makeLeaf(path.join(dir, 'gw2'), ca, { cn: 'upstream.test' });
  // The upstream speaks TLS with a certificate from another CA than the DR names.
  const rogue = await makeLeaf(path.join(dir, 'rogue'), otherCa, { cn: 'upstream.test' });
  const upstream = tls.createServer({ cert: fs.readFileSync(rogue.certFile), key: fs.readFileSync(rogue.keyFile) }, (s) => s.destroy());
  upstream.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => upstream.listen(upstreamPort, '127.0.0.1', resolve));
  t.teardown(() => upstream.close());
  const gw = await startTestRuntime(t, config(httpsPort, httpPort, upstreamPort, leaf.certFile, leaf.keyFile, ca.certFile));

  const plain = await rawExchange(httpsPort, 'GET / HTTP/1.1\r\nhost: upstream.test\r\n\r\n');
  t.equal(plain, '', 'plain HTTP to the TLS port: closed without an answer (no filter chain for raw bytes)');

  const r = await rawExchange(httpPort, 'GET /x HTTP/1.1\r\nhost: upstream.test\r\nconnection: close\r\n\r\n');
  t.match(r, /^HTTP\/1\.1 503 /, 'wrong CA upstream: 503');
  t.match(r, /transport failure reason: TLS error/, 'Envoy\'s local reply text');
  const lines = await gw.lines();
  const line = lines.find((l) => l.includes('"GET /x HTTP/1.1"'));
  t.match(line, /" 503 UF,URX upstream_reset_before_response_started\{connection_failure,TLS_error\} - "TLS_error:(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)" /, 'access log: flags, details and UPSTREAM_TRANSPORT_FAILURE_REASON');
  t.equal(gw.stat(`cluster.outbound|${upstreamPort}||upstream.test.ssl.fail_verify_error`), 3, 'cluster ssl.fail_verify_error: the try and Istio\'s two retries');
  t.equal(gw.stat(`listener.0.0.0.0_${httpsPort}.no_filter_chain_match`), 1, 'the plain connection to the TLS port counted as no_filter_chain_match');
  t.ok(lines.some((l) => /"- - -" 0 NR - filter_chain_not_found /.test(l) && l.includes(`:${httpsPort} `)), 'and logged NR filter_chain_not_found');
});
