// The sidecar DNS proxy on loopback, asked by a real DNS client (dig, Debian bind9-dnsutils): names
// from the snapshot's table answered A / AAAA / NODATA over UDP and TCP, a VIP auto-allocated for a
// host without addresses, everything else forwarded to an upstream resolver (a loopback stand-in
// that answers with bytes of its own) and passed back unchanged, SERVFAIL when no upstream answers.
import t from 'tap';
import dgram from 'node:dgram';
import net from 'node:net';
import { execFile } from 'node:child_process';
import pino from 'pino';
import { compile } from '../../../../config/compile/index';
import { DnsProxy, type Upstream } from '../../../../proxy/dns/proxy';
import { installPackages, onPath } from '../../../helpers/system-packages';
import { SIDECAR, resources, se } from '../../../fixtures/compile/resources';

const snapshot = compile(resources(
  se('httpbin-bar', 'foo', { hosts: ['httpbin.bar.global'], location: 'MESH_INTERNAL', ports: [{ number: 8000, name: 'http1', protocol: 'HTTP' }], resolution: 'DNS', addresses: ['127.255.0.2'], endpoints: [{ address: '198.18.7.10' }] }),
  se('dual', 'foo', { hosts: ['dual.example'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'STATIC', addresses: ['198.19.0.5', 'fd00::5'], endpoints: [{ address: '198.18.9.9' }] }),
  se('db', 'foo', { hosts: ['db.example', 'cache.example'], ports: [{ number: 5432, name: 'tcp', protocol: 'TCP' }], resolution: 'DNS' }),
), { ...SIDECAR, dnsCapture: true });

function dig(port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('dig', ['@127.0.0.1', '-p', String(port), '+time=2', '+tries=1', ...args], { timeout: 10_000 }, (err, stdout) => (err !== null && stdout === '' ? reject(err) : resolve(stdout)));
  });
}

/** The answer section's `TYPE DATA` pairs and the status, from dig's output. */
function parsed(out: string): { status: string; answers: string[]; aa: boolean } {
  const status = /status: (\w+)/.exec(out)?.[1] ?? '?';
  const aa = / flags: [^;]*\baa\b/.test(out);
  const answers = out.split('\n').filter((l) => /^\S+\.\s+\d+\s+IN\s+/.test(l)).map((l) => l.split(/\s+/).slice(1).join(' '));
  return { status, answers, aa };
}

async function startProxy(t: { teardown(fn: () => void): void }, upstreams: readonly Upstream[]): Promise<number> {
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const proxy = new DnsProxy({ host: '127.0.0.1', port, snapshot: () => snapshot, upstreams: () => upstreams, log: pino({ level: 'silent' }) });
  await proxy.listen();
  t.teardown(() => proxy.close());
  return port;
}

t.before(() => {
  if (!onPath('dig')) {
    const err = installPackages(['bind9-dnsutils']);
    if (err !== null) throw new Error(`dig is needed (apt-get install bind9-dnsutils): ${err}`);
  }
});

t.test('names of the table: A, AAAA, NODATA, over UDP and TCP, authoritative, TTL 30', async (t) => {
  const port = await startProxy(t, []);
  t.same(parsed(await dig(port, ['httpbin.bar.global', 'A'])), { status: 'NOERROR', answers: ['30 IN A 127.255.0.2'], aa: true }, "the seed's VIP");
  t.same(parsed(await dig(port, ['HTTPBIN.bar.global.', 'A', '+tcp'])).answers, ['30 IN A 127.255.0.2'], 'TCP, any case');
  t.same(parsed(await dig(port, ['dual.example', 'AAAA'])).answers, ['30 IN AAAA fd00::5']);
  t.same(parsed(await dig(port, ['dual.example', 'A'])).answers, ['30 IN A 198.19.0.5']);
  const nodata = parsed(await dig(port, ['httpbin.bar.global', 'AAAA']));
  t.same([nodata.status, nodata.answers], ['NOERROR', []], 'no IPv6 address: NODATA, not NXDOMAIN');
  t.same(parsed(await dig(port, ['httpbin.bar.global', 'MX'])).answers, [], 'another type: NODATA');
});

t.test('hosts without addresses get VIPs from 240.240.0.0/16, in sorted host order, and the listeners use them', async (t) => {
  const port = await startProxy(t, []);
  t.same(parsed(await dig(port, ['cache.example'])).answers, ['30 IN A 240.240.0.1']);
  t.same(parsed(await dig(port, ['db.example'])).answers, ['30 IN A 240.240.0.2']);
  t.ok(snapshot.listeners.has('240.240.0.2_5432'), 'a TCP service is caught on its VIP');
  t.notOk(compile(resources(se('db', 'foo', { hosts: ['db.example'], ports: [{ number: 5432, name: 'tcp', protocol: 'TCP' }], resolution: 'DNS' })), SIDECAR).listeners.has('240.240.0.1_5432'), 'only with --dns-capture');
});

t.test('other names go to the upstream resolver and its reply comes back byte for byte; none answering: SERVFAIL', async (t) => {
  const seen: Buffer[] = [];
  const upstream = dgram.createSocket('udp4');
  // A reply the proxy could not have made: the query's ID and question, one A record, and an odd TTL.
  upstream.on('message', (q, r) => {
    seen.push(q);
    let end = 12;
    while (q[end] !== 0) end += q[end]! + 1;
    const reply = Buffer.concat([q.subarray(0, 2), Buffer.from([0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]), q.subarray(12, end + 5),
      Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x0f, 0, 4, 198, 18, 3, 4])]);
    upstream.send(reply, r.port, r.address);
  });
  await new Promise<void>((resolve) => upstream.bind(0, '127.0.0.1', resolve));
  t.teardown(() => upstream.close());
  const port = await startProxy(t, [{ address: '127.0.0.1', port: (upstream.address() as net.AddressInfo).port }]);
  // A raw client, so that the reply can be compared to the upstream's bytes.
  const client = dgram.createSocket('udp4');
  t.teardown(() => client.close());
  const query = Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 5, ...Buffer.from('other'), 7, ...Buffer.from('example'), 0, 0, 1, 0, 1]);
  const reply = await new Promise<Buffer>((resolve) => {
    client.once('message', (m) => resolve(m));
    client.send(query, port, '127.0.0.1');
  });
  t.same(seen[0], query, 'the query went upstream as it came');
  t.same(reply.subarray(reply.length - 16), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x0f, 0, 4, 198, 18, 3, 4]), "the upstream's record, TTL 3599, unchanged");
  t.equal(reply.readUInt16BE(0), 0x1234);
  t.same(parsed(await dig(port, ['other.example'])).answers, ['3599 IN A 198.18.3.4'], 'dig sees the upstream answer');

  const silent = await startProxy(t, []);
  t.equal(parsed(await dig(silent, ['other.example'])).status, 'SERVFAIL');
});
