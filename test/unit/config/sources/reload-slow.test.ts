// While a reload is being applied (here: held at cluster warming, a new DNS cluster whose answer the
// test's DNS server keeps back), traffic is served by the config in force, and only after the new
// clusters and snapshot are swapped in does it follow the new routes. The reload goes the whole way
// a file change goes: config thread, snapshot in pieces, cluster table built in slices. Real
// Runtime, files, watcher, HTTP upstreams and a DNS server on loopback; bounded waits only.
import t, { type Test } from 'tap';
import dgram from 'node:dgram';
import * as fs from 'node:fs';
import http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, oneUpstreamConfig, startTestRuntime } from '../../../helpers/gateway';
import { configureDns } from '../../../../proxy/upstream/dns';

/** Answers A queries for `name` with 127.0.0.1, but only once released; counts the queries. */
class HeldDns {
  readonly socket = dgram.createSocket('udp4');
  queries = 0;
  private held: { msg: Buffer; port: number; address: string }[] = [];
  private released = false;

  async start(): Promise<number> {
    this.socket.on('message', (msg, rinfo) => {
      this.queries++;
      if (this.released) this.reply(msg, rinfo.port, rinfo.address);
      else this.held.push({ msg, port: rinfo.port, address: rinfo.address });
    });
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', r));
    return this.socket.address().port;
  }

  release(): void {
    this.released = true;
    for (const h of this.held.splice(0)) this.reply(h.msg, h.port, h.address);
  }

  private reply(q: Buffer, port: number, address: string): void {
    let off = 12;
    while (off < q.length && q[off] !== 0) off += 1 + q[off]!;
    const qtype = q.readUInt16BE(off + 1);
    const head = Buffer.alloc(12);
    head.writeUInt16BE(q.readUInt16BE(0), 0);
    head.writeUInt16BE(0x8180, 2);
    head.writeUInt16BE(1, 4);
    head.writeUInt16BE(qtype === 1 ? 1 : 0, 6);
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0);
    rr.writeUInt16BE(1, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(30, 6);
    rr.writeUInt16BE(4, 10);
    [127, 0, 0, 1].forEach((o, i) => rr.writeUInt8(o, 12 + i));
    this.socket.send(Buffer.concat([head, q.subarray(12, off + 5), ...(qtype === 1 ? [rr] : [])]), port, address);
  }
}

function upstream(t: Test, body: string): Promise<number> {
  const server = http.createServer((_req, res) => res.end(body));
  t.teardown(() => server.close());
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r((server.address() as { port: number }).port)));
}

function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/', headers: { host: 'up.example' }, agent: false }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (c: string) => (body += c));
      r.on('end', () => resolve(`${r.statusCode} ${body}`));
    }).on('error', reject);
  });
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !ok(); i++) await sleep(25);
  if (!ok()) throw new Error(`timed out waiting for ${what}`);
}

t.test('traffic during a reload that is still being applied is served by the old config until the swap', async (t) => {
  const dnsServer = new HeldDns();
  const dnsPort = await dnsServer.start();
  t.teardown(() => {
    dnsServer.socket.close();
    configureDns({});
  });
  const [portA, portB, gwPort] = [await upstream(t, 'A'), await upstream(t, 'B'), await freePort()];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-reload-slow-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(file, oneUpstreamConfig({ gwPort, upstreamPort: portA }));
  const gw = await startTestRuntime(t, '', { configPaths: [file], embeddedConfig: null, dnsServers: [`127.0.0.1:${dnsPort}`] });
  t.equal(await get(gwPort), '200 A', 'the first config routes to A');
  const first = gw.rt.snapshot;

  fs.writeFileSync(file, oneUpstreamConfig({ gwPort, upstreamPort: portA, http: '  - route: [{ destination: { host: slow.example, port: { number: 80 } } }]' }) + `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: slow, namespace: default }
spec:
  hosts: [slow.example]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: DNS
  endpoints: [{ address: slow.test, ports: { http: ${portB} } }]
`);
  // The new snapshot arrived and its new DNS cluster asked for its name: the reload is under way.
  await until('the new cluster to ask DNS', () => dnsServer.queries > 0);
  const during: string[] = [];
  for (let i = 0; i < 5; i++) during.push(await get(gwPort));
  t.same(during, ['200 A', '200 A', '200 A', '200 A', '200 A'], 'every request during the reload went by the old config');
  t.equal(gw.rt.snapshot, first, 'the old snapshot is still in force');
  t.equal(gw.stat('sluice.config.applied') ?? 0, 0);

  dnsServer.release();
  await until('the reload to be applied', () => (gw.stat('sluice.config.applied') ?? 0) >= 1);
  t.not(gw.rt.snapshot, first);
  t.equal(await get(gwPort), '200 B', 'after the swap the new route is used');
});
