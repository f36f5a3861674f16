// connectUpstream with TLS origination against real TLS servers on loopback, with certificates made
// by openssl for this test: the errors people hit (wrong CA, SAN mismatch, handshake failure, TLS to
// a plain port, client certificate missing or refused by a MUTUAL upstream), each classified as
// PRX_ERR_UPSTREAM_TLS with a `TLS_error:` transport reason and counted in Envoy's cluster ssl.* stats;
// session resumption on repeated connections (TLS 1.3 sessions cached without the server's
// certificate, TLS 1.2 ones whole); a TLS connection's byte totals and close accounting; TLS read
// through `onread`.

import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import type { Cluster, UpstreamTls } from '../../../../config/compile/snapshot';
import { ProxyErrorCode, rescueFor, type ProxyError } from '../../../../proxy/errors';
import { ClusterStats, StatsStore } from '../../../../proxy/observe/stats';
import { buildTlsOrigination, resumableSession } from '../../../../proxy/tls/origination';
import { connectUpstream } from '../../../../proxy/upstream/connect';
import { UpstreamHost } from '../../../../proxy/upstream/host';
import { makeCa, makeLeaf, type CertFiles } from '../../../e2e/harness/certs';

interface Pki {
  ca: CertFiles;
  otherCa: CertFiles;
  server: CertFiles; // DNS:upstream.test, from ca
  rogueServer: CertFiles; // DNS:upstream.test, from otherCa
  client: CertFiles; // URI spiffe, from ca
}

let pki: Pki;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-connect-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
t.setTimeout(30_000); // a bound for a hang, not a timed assertion

t.before(async () => {
  const ca = await makeCa(dir, 'ca');
  const otherCa = await makeCa(dir, 'other-ca');
  pki = {
    ca, otherCa,
    server: await makeLeaf(dir, ca, { cn: 'upstream.test', name: 'server' }),
    rogueServer: await makeLeaf(dir, otherCa, { cn: 'upstream.test', name: 'rogue' }),
    client: await makeLeaf(dir, ca, { cn: 'sleep', uris: ['spiffe://cluster.local/ns/default/sa/sleep'], name: 'client' }),
  };
});

const read = (f: string) => fs.readFileSync(f);

/** A TLS server on 127.0.0.1:0 answering `pong` to anything; closed with the test. */
async function tlsServer(t: tap.Test, opts: tls.TlsOptions): Promise<{ port: number; accepted: () => number; peers: string[] }> {
  let accepted = 0;
  const peers: string[] = [];
  const server = tls.createServer(opts, (s) => {
    accepted++;
    const c = s.getPeerCertificate();
    peers.push(c && c.subjectaltname ? c.subjectaltname : '-');
    s.on('error', () => {});
    s.on('data', () => s.end('pong'));
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, accepted: () => accepted, peers };
}

/** A raw TCP server: `onData` decides what the peer sees (plain HTTP, a TLS alert record, ...). */
async function rawServer(t: tap.Test, onData: (s: net.Socket, chunk: Buffer) => void): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.once('data', (c: Buffer) => onData(s, c));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => { for (const s of sockets) s.destroy(); server.close(); });
  return (server.address() as net.AddressInfo).port;
}

function upstreamTls(over: Partial<UpstreamTls>): UpstreamTls {
  return { mode: 'SIMPLE', sni: 'upstream.test', autoSni: false, caFile: pki.ca.certFile, certFile: null, keyFile: null, subjectAltNames: [], insecureSkipVerify: false, alpn: [], ...over };
}

interface Outcome { err: ProxyError | null; socket: net.Socket | null }

function connect(stats: ClusterStats, port: number, tlsSettings: UpstreamTls, origination = buildTlsOrigination({ tls: tlsSettings } as Cluster)): Promise<Outcome> {
  const host = new UpstreamHost('127.0.0.1', port, '', null);
  return new Promise((resolve) => {
    connectUpstream(stats, host, { connectTimeoutMs: 5000, tls: origination, sni: tlsSettings.sni, keepalive: null }, (err, socket) => resolve({ err, socket }));
  });
}

/** Write `ping`, read until the server closes: what a request over the connection would see. */
function exchange(s: net.Socket, payload = 'ping'): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => (data += c));
    s.on('error', () => {});
    s.on('end', () => s.end()); // the socket is half-open capable (allowHalfOpen), as the relay needs
    s.on('close', () => resolve(data));
    s.write(payload);
  });
}

function newStats(): { store: StatsStore; stats: ClusterStats } {
  const store = new StatsStore();
  return { store, stats: new ClusterStats(store, 'outbound|443||upstream.test') };
}

function assertTlsFailure(t: tap.Test, o: Outcome, reason: RegExp): void {
  t.equal(o.socket, null, 'no socket handed over');
  t.equal(o.err?.code, ProxyErrorCode.UPSTREAM_TLS, 'classified PRX_ERR_UPSTREAM_TLS');
  t.match(o.err?.transportReason ?? '', reason, `UPSTREAM_TRANSPORT_FAILURE_REASON ${o.err?.transportReason}`);
  t.equal(rescueFor(ProxyErrorCode.UPSTREAM_TLS).flags, 'UF', 'which Envoy logs as UF (503)');
}

for (const [version, stripped] of [['TLSv1.3', true], ['TLSv1.2', false]] as const) {
  t.test(`SIMPLE with the right CA (${version}): handshake counted, bytes flow; later connections resume the session, cached ${stripped ? 'without' : 'with'} the server certificate`, async (t) => {
    const srv = await tlsServer(t, { cert: read(pki.server.certFile), key: read(pki.server.keyFile), maxVersion: version });
    const { stats } = newStats();
    const settings = upstreamTls({});
    const origination = buildTlsOrigination({ tls: settings } as Cluster);
    for (let i = 1; i <= 3; i++) {
      const o = await connect(stats, srv.port, settings, origination);
      t.equal(o.err, null, `connection ${i} established`);
      t.equal((o.socket as tls.TLSSocket).authorized, true, `connection ${i} verified`);
      t.equal(await exchange(o.socket!), 'pong', `connection ${i}: bytes both ways`);
    }
    t.equal(stats.ssl_handshake.value, 3, 'ssl.handshake per connection');
    t.equal(stats.ssl_session_reused.value, 2, 'ssl.session_reused: the second and third resumed');
    t.equal(stats.upstream_cx_total.value, 3, 'upstream_cx_total as for TCP');
    t.equal(stats.ssl_connection_error.value + stats.ssl_fail_verify_error.value + stats.ssl_fail_verify_san.value, 0, 'no failure counted');
    // TLS 1.3 resumes on the PSK alone, and Node refuses a resumed TLS 1.2 connection without a certificate.
    const cached = origination.sessions.get('upstream.test');
    t.ok(cached !== undefined, 'a session is cached under the SNI');
    t.equal(cached!.includes(new X509Certificate(read(pki.server.certFile)).raw), !stripped, stripped ? 'without the certificate' : 'with the certificate');
  });
}

t.test('wrong CA: fail_verify_error, TLS_error reason, connect_fail', async (t) => {
  const srv = await tlsServer(t, { cert: read(pki.rogueServer.certFile), key: read(pki.rogueServer.keyFile) });
  const { stats } = newStats();
  assertTlsFailure(t, await connect(stats, srv.port, upstreamTls({})), /^TLS_error:(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/);
  t.equal(stats.ssl_fail_verify_error.value, 1, 'ssl.fail_verify_error');
  t.equal(stats.upstream_cx_connect_fail.value, 1, 'upstream_cx_connect_fail');
  t.equal(stats.ssl_handshake.value, 0, 'no successful handshake');
});

t.test('SAN mismatch: DR subjectAltNames, and SNI vs certificate name; both fail_verify_san', async (t) => {
  const srv = await tlsServer(t, { cert: read(pki.server.certFile), key: read(pki.server.keyFile) });
  const { stats } = newStats();
  assertTlsFailure(t, await connect(stats, srv.port, upstreamTls({ subjectAltNames: ['spiffe://cluster.local/ns/x/sa/y'] })), /^TLS_error:ERR_SLUICE_SAN_MISMATCH$/);
  assertTlsFailure(t, await connect(stats, srv.port, upstreamTls({ sni: 'other.test' })), /^TLS_error:ERR_TLS_CERT_ALTNAME_INVALID$/);
  t.equal(stats.ssl_fail_verify_san.value, 2, 'ssl.fail_verify_san twice');
  t.equal(stats.ssl_fail_verify_error.value, 0, 'not counted as a CA failure');
  const ok = await connect(stats, srv.port, upstreamTls({ subjectAltNames: ['upstream.test'] }));
  t.equal(ok.err, null, 'a matching DR subjectAltNames entry passes');
  ok.socket!.destroy();
});

t.test('upstream handshake failure (the server answers the ClientHello with a handshake_failure alert)', async (t) => {
  // TLS record: content type 21 (alert), TLS 1.2, length 2, level fatal (2), handshake_failure (40).
  const port = await rawServer(t, (s) => s.end(Buffer.from([21, 3, 3, 0, 2, 2, 40])));
  const { stats } = newStats();
  assertTlsFailure(t, await connect(stats, port, upstreamTls({})), /^TLS_error:ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE$/);
  t.equal(stats.ssl_connection_error.value, 1, 'ssl.connection_error');
});

t.test('TLS spoken to a plain port: the HTTP server\'s 400 is not TLS', async (t) => {
  const port = await rawServer(t, (s) => s.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n'));
  const { stats } = newStats();
  assertTlsFailure(t, await connect(stats, port, upstreamTls({})), /^TLS_error:ERR_SSL_WRONG_VERSION_NUMBER$/);
  t.equal(stats.ssl_connection_error.value, 1, 'ssl.connection_error');
});

t.test('plain spoken to a TLS port: the connection opens, the TLS server drops the bytes and closes', async (t) => {
  const srv = await tlsServer(t, { cert: read(pki.server.certFile), key: read(pki.server.keyFile) });
  const { stats } = newStats();
  const host = new UpstreamHost('127.0.0.1', srv.port, '', null);
  const o = await new Promise<Outcome>((resolve) => connectUpstream(stats, host, { connectTimeoutMs: 5000, tls: null, sni: null, keepalive: null }, (err, socket) => resolve({ err, socket })));
  t.equal(o.err, null, 'TCP connect succeeds: nothing tells plain from TLS before bytes flow');
  t.equal(await exchange(o.socket!, 'GET / HTTP/1.1\r\nhost: upstream.test\r\n\r\n'), '', 'the server answers nothing and closes (the HTTP path logs this as UC)');
  t.equal(srv.accepted(), 0, 'the TLS server never saw a handshake');
});

t.test('MUTUAL upstream: a missing client certificate is a connect failure; with it the connection works', async (t) => {
  const srv = await tlsServer(t, { cert: read(pki.server.certFile), key: read(pki.server.keyFile), ca: read(pki.ca.certFile), requestCert: true, rejectUnauthorized: true });
  const { stats } = newStats();
  // DR MUTUAL without clientCertificate / privateKey: `sluice validate` warns; the server refuses.
  assertTlsFailure(t, await connect(stats, srv.port, upstreamTls({ mode: 'MUTUAL' })), /^TLS_error:ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED$/);
  t.equal(stats.ssl_connection_error.value, 1, 'ssl.connection_error');
  // (A certificate from another CA is refused with an alert by servers that verify inside the
  // handshake (Envoy, Go); a Node server, whose OpenSSL callback accepts and whose JS then closes,
  // is seen as a reset after connect instead.)
  const good = buildTlsOrigination({ tls: upstreamTls({ mode: 'MUTUAL', certFile: pki.client.certFile, keyFile: pki.client.keyFile }) } as Cluster);
  for (let i = 1; i <= 2; i++) {
    const o = await connect(stats, srv.port, upstreamTls({ mode: 'MUTUAL' }), good);
    t.equal(o.err, null, `with the client certificate: connection ${i} established`);
    t.equal(await exchange(o.socket!), 'pong', `and used (${i})`);
  }
  t.equal(srv.accepted(), 2, 'the server accepted exactly the two authenticated connections');
  t.match(srv.peers[0], /URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep/, 'and saw our identity');
  t.equal(stats.ssl_session_reused.value, 1, 'the second resumed the first one\'s session');
});

t.test('TLS to a closed port: a TCP connect failure (errno as the reason), not a TLS one', async (t) => {
  // A port that was just listened on and closed: nothing listens there.
  const closed = await new Promise<number>((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const { stats } = newStats();
  const o = await connect(stats, closed, upstreamTls({}));
  t.equal(o.socket, null, 'no socket handed over');
  t.equal(o.err?.code, ProxyErrorCode.UPSTREAM_CONNECT, 'PRX_ERR_UPSTREAM_CONNECT');
  t.equal(o.err?.transportReason, 'ECONNREFUSED', 'the errno, no TLS_error: prefix');
  t.equal(stats.ssl_connection_error.value + stats.ssl_fail_verify_error.value + stats.ssl_fail_verify_san.value, 0, 'no TLS failure counted');
  t.equal(stats.upstream_cx_connect_fail.value, 1, 'upstream_cx_connect_fail');
});

/**
 * A TLS server over sockets it wraps itself, so the test sees the raw TCP byte counts of each
 * connection (a net.Socket's counters are its handle's, which the TLS layer reads and writes).
 * `onSecure` decides what happens on each connection.
 */
async function wireCountingServer(t: tap.Test, onSecure: (s: tls.TLSSocket) => void): Promise<{ port: number; closed: () => Promise<{ read: number; written: number }> }> {
  const context = tls.createSecureContext({ cert: read(pki.server.certFile), key: read(pki.server.keyFile) });
  const closes: { read: number; written: number }[] = [];
  const waiters: ((v: { read: number; written: number }) => void)[] = [];
  const server = net.createServer((raw) => {
    raw.on('error', () => {});
    raw.on('close', () => {
      const v = { read: raw.bytesRead, written: raw.bytesWritten };
      const w = waiters.shift();
      if (w !== undefined) w(v);
      else closes.push(v);
    });
    const s = new tls.TLSSocket(raw, { isServer: true, secureContext: context });
    s.on('error', () => {});
    s.on('secure', () => onSecure(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  return {
    port: (server.address() as net.AddressInfo).port,
    closed: () => new Promise((resolve) => (closes.length > 0 ? resolve(closes.shift()!) : waiters.push(resolve))),
  };
}

function closedOnce(s: net.Socket): Promise<void> {
  return new Promise((resolve) => (s.destroyed && s.closed ? resolve() : s.once('close', () => resolve())));
}

t.test('TLS byte totals are the TCP connection\'s (handshake and records included); who closed first is counted', async (t) => {
  const srv = await wireCountingServer(t, (s) => s.on('data', () => s.end('pong')));
  const { stats } = newStats();
  const o = await connect(stats, srv.port, upstreamTls({}));
  t.equal(o.err, null, 'connected');
  t.equal(await exchange(o.socket!), 'pong', 'bytes both ways; the upstream closed first');
  const wire = await srv.closed();
  t.equal(stats.upstream_cx_rx_bytes_total.value, wire.written, `upstream_cx_rx_bytes_total = what the server wrote on the wire (${wire.written})`);
  t.equal(stats.upstream_cx_tx_bytes_total.value, wire.read, `upstream_cx_tx_bytes_total = what the server read off the wire (${wire.read})`);
  t.ok(wire.written > 1000, 'which includes the handshake, not just the 4 plaintext bytes');
  t.equal(stats.upstream_cx_destroy_remote.value, 1, 'the upstream\'s close: upstream_cx_destroy_remote');
  t.equal(stats.upstream_cx_destroy_local.value, 0);

  // Now we close first: the server holds its side open.
  const quiet = await wireCountingServer(t, () => undefined);
  const o2 = await connect(stats, quiet.port, upstreamTls({}));
  t.equal(o2.err, null, 'connected');
  o2.socket!.destroy();
  await closedOnce(o2.socket!);
  await quiet.closed();
  t.equal(stats.upstream_cx_destroy_local.value, 1, 'our close: upstream_cx_destroy_local');
  t.equal(stats.upstream_cx_destroy.value, 2);
});

t.test('TLS with onread: the decrypted bytes, exact across records, land in the caller\'s buffer; no data events', async (t) => {
  // 100 KB in writes of 7,000 bytes: many TLS records, records split across reads and buffers.
  const payload = Buffer.alloc(100_000);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + (i >> 8)) & 0xff;
  const sender = tls.createServer({ cert: read(pki.server.certFile), key: read(pki.server.keyFile) }, (s) => {
    s.on('error', () => {});
    s.once('data', () => {
      for (let at = 0; at < payload.length; at += 7000) s.write(payload.subarray(at, at + 7000));
      s.end();
    });
  });
  await new Promise<void>((resolve) => sender.listen(0, '127.0.0.1', resolve));
  t.teardown(() => sender.close());
  const pieces: Buffer[] = [];
  let largest = 0;
  let buffers = 0;
  const onread: net.OnReadOpts = {
    // A new small buffer each time: every delivery must be bounded by the buffer it was given.
    buffer: () => {
      buffers++;
      return Buffer.alloc(1500);
    },
    callback: (n: number, buf: Uint8Array) => {
      largest = Math.max(largest, n);
      pieces.push(Buffer.from(buf.subarray(0, n)));
      return true;
    },
  };
  const { stats } = newStats();
  const host = new UpstreamHost('127.0.0.1', (sender.address() as net.AddressInfo).port, '', null);
  const settings = upstreamTls({});
  const o = await new Promise<Outcome>((resolve) => connectUpstream(stats, host, { connectTimeoutMs: 5000, tls: buildTlsOrigination({ tls: settings } as Cluster), sni: settings.sni, keepalive: null }, (err, socket) => resolve({ err, socket }), onread));
  t.equal(o.err, null, 'connected');
  const s = o.socket!;
  let dataEvents = 0;
  s.on('data', () => dataEvents++);
  s.on('end', () => s.end());
  s.write('go');
  await closedOnce(s);
  const got = Buffer.concat(pieces);
  t.equal(got.length, payload.length, 'every byte');
  t.ok(got.equals(payload), 'in order, none repeated or lost');
  t.ok(largest <= 1500, `deliveries bounded by the buffer (largest ${largest})`);
  t.ok(buffers > 1, 'the buffer function was asked again after deliveries');
  t.equal(dataEvents, 0, 'no data events');
});

t.test('resumableSession keeps what it does not recognise as it is', async (t) => {
  const srv = await tlsServer(t, { cert: read(pki.server.certFile), key: read(pki.server.keyFile) });
  const session = await new Promise<Buffer>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: srv.port, ca: read(pki.ca.certFile), servername: 'upstream.test' });
    s.on('error', reject);
    s.once('session', (x: Buffer) => {
      resolve(x);
      s.destroy();
    });
    s.on('secureConnect', () => s.write('ping'));
  });
  const compact = resumableSession(session);
  t.ok(compact.length < session.length, `a TLS 1.3 session shrinks (${session.length} -> ${compact.length} bytes)`);
  t.equal(resumableSession(compact), compact, 'once stripped, kept as it is');
  for (const [what, blob] of [
    ['empty', Buffer.alloc(0)],
    ['not DER', Buffer.from('not a session')],
    ['truncated', session.subarray(0, session.length - 1)],
    ['trailing bytes', Buffer.concat([session, Buffer.from([0])])],
  ] as const) {
    t.equal(resumableSession(blob), blob, `${what}: the same buffer back`);
  }
});
