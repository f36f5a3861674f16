// ResponseReader (the pool's onread reader) over real plain and TLS connections opened by
// connectUpstream: the bytes a sink keeps by reference while reporting them retained (as a downstream
// write still queued would) are never written over by later reads, across TLS records, buffer
// growth and several deliveries per socket read; bytes not retained may be, which is the point. A
// sink that pauses the socket (the pool's backpressure) and resumes it later loses nothing.

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import type { Cluster, UpstreamTls } from '../../../../config/compile/snapshot';
import { ResponseReader, type ResponseSink } from '../../../../proxy/l7/response-reader';
import { ClusterStats, StatsStore } from '../../../../proxy/observe/stats';
import { buildTlsOrigination } from '../../../../proxy/tls/origination';
import { connectUpstream } from '../../../../proxy/upstream/connect';
import { UpstreamHost } from '../../../../proxy/upstream/host';
import { makeCa, makeLeaf, type CertFiles } from '../../../e2e/harness/certs';

t.setTimeout(30_000); // a bound for a hang, not a timed assertion

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-reader-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
let ca: CertFiles;
let leaf: CertFiles;
t.before(async () => {
  ca = await makeCa(dir, 'ca');
  leaf = await makeLeaf(dir, ca, { cn: 'upstream.test' });
});

// Every byte differs from its neighbours, so a buffer written over under a kept chunk shows.
const PAYLOAD = Buffer.alloc(1_500_000);
for (let i = 0; i < PAYLOAD.length; i++) PAYLOAD[i] = (i * 7 + (i >> 11)) & 0xff;

/** Sends PAYLOAD on each connection, in writes of varied sizes (TLS records of varied sizes), then ends. */
function send(s: net.Socket): void {
  s.on('error', () => {});
  let at = 0;
  for (let n = 1; at < PAYLOAD.length; n++) {
    const size = (n * 7919) % 40_000 + 1;
    s.write(PAYLOAD.subarray(at, at + size));
    at += size;
  }
  s.end();
}

/**
 * Keeps every other delivery by reference and reports it retained; copies the others. With `pausing`,
 * pauses the socket after every third delivery and resumes it on the next turn, as the pool does when
 * a downstream write backs up and then drains.
 */
class KeepingSink implements ResponseSink {
  readonly kept: Buffer[] = [];
  deliveries = 0;
  pauses = 0;
  socket: net.Socket | null = null;
  constructor(private readonly pausing: boolean) {}
  upstreamBytes(chunk: Buffer): boolean {
    const retain = this.deliveries++ % 2 === 0;
    this.kept.push(retain ? chunk : Buffer.from(chunk));
    const s = this.socket;
    if (this.pausing && s !== null && this.deliveries % 3 === 0 && !s.isPaused()) {
      this.pauses++;
      s.pause();
      setImmediate(() => s.resume());
    }
    return retain;
  }
}

async function readAll(t: tap.Test, port: number, origination: UpstreamTls | null, pausing = false): Promise<KeepingSink> {
  const reader = new ResponseReader();
  const sink = new KeepingSink(pausing);
  reader.sink = sink;
  const stats = new ClusterStats(new StatsStore(), 'outbound|443||upstream.test');
  const opts = { connectTimeoutMs: 5000, tls: origination === null ? null : buildTlsOrigination({ tls: origination } as Cluster), sni: origination === null ? null : 'upstream.test', keepalive: null };
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    connectUpstream(stats, new UpstreamHost('127.0.0.1', port, '', null), opts, (err, s) => (err === null ? resolve(s!) : reject(err)), reader.onread);
  });
  sink.socket = socket;
  socket.on('end', () => socket.end());
  await new Promise<void>((resolve) => socket.on('close', () => resolve()));
  t.ok(sink.deliveries > 10, `${sink.deliveries} deliveries`);
  return sink;
}

/** A TLS server (certificate for upstream.test) that sends PAYLOAD on each connection. */
async function tlsSender(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const server = tls.createServer({ cert: fs.readFileSync(leaf.certFile), key: fs.readFileSync(leaf.keyFile) }, send);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

const SIMPLE = (): UpstreamTls => ({ mode: 'SIMPLE', sni: 'upstream.test', autoSni: false, caFile: ca.certFile, certFile: null, keyFile: null, subjectAltNames: [], insecureSkipVerify: false, alpn: [] });

t.test('plain TCP: kept chunks stay intact', async (t) => {
  const server = net.createServer(send);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const sink = await readAll(t, (server.address() as net.AddressInfo).port, null);
  t.ok(Buffer.concat(sink.kept).equals(PAYLOAD), 'every byte as sent');
});

t.test('TLS: kept chunks of decrypted records stay intact', async (t) => {
  const port = await tlsSender(t);
  const sink = await readAll(t, port, SIMPLE());
  const got = Buffer.concat(sink.kept);
  t.equal(got.length, PAYLOAD.length, 'every byte');
  t.ok(got.equals(PAYLOAD), 'as sent');
});

t.test('TLS: a sink that pauses the socket and resumes it later loses nothing', async (t) => {
  const port = await tlsSender(t);
  const sink = await readAll(t, port, SIMPLE(), true);
  t.ok(sink.pauses > 3, `paused ${sink.pauses} times`);
  t.ok(Buffer.concat(sink.kept).equals(PAYLOAD), 'every byte as sent, in order');
});
