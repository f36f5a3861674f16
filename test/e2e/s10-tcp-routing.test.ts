// Seed S10 (003): one TCP service, two versions, chosen by the ingress gateway port.
// The seed's own YAML (config/samples/s10) on real kernels:
//
//   client 198.18.4.2 ──edge── ingress gateway 198.18.4.1 (sluice, istio=ingressgateway, :31400 :31401)
//                                   ├──v1net── tcp-echo v1 198.18.5.10:3333
//                                   └──v2net── tcp-echo v2 198.18.6.10:3333
//
// The echo servers greet first (server-first protocol), so the greeting arriving before the client
// sends a byte proves the gateway does not sniff a declared TCP port.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { serverArgv, sluiceArgv } from './harness/paths';
import { PROXY_UID, requireRoot } from './harness/prereqs';
import type { ProcHandle } from './harness/proc-handle';
import { Topology } from './harness/topology';
import { sample } from './egress-mesh';

const GATEWAY_IP = '198.18.4.1';
const CLIENT_IP = '198.18.4.2';
const V1_IP = '198.18.5.10';
const V2_IP = '198.18.6.10';
const V1_CLUSTER = 'outbound|3333|v1|tcp-echo.default.svc.cluster.local';
const V2_CLUSTER = 'outbound|3333|v2|tcp-echo.default.svc.cluster.local';
const CONNECTIONS = 50;

// A client for many connections in one process (a node start per connection would take ~50 ms each).
// Per connection: wait for the whole greeting WITHOUT writing anything, then send one line, expect it
// echoed, half-close, wait for the server's close. Prints one JSON summary.
const CLIENT_JS = `
const net = require('node:net');
const [host, port, count] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const out = { versions: {}, echoed: 0, failures: [], maxGreetingMs: 0 };
function one(i) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, allowHalfOpen: true });
    const started = Date.now();
    let buf = '', greeted = false, done = false;
    const finish = (err) => { if (done) return; done = true; if (err) out.failures.push(i + ': ' + err); s.destroy(); resolve(); };
    s.setTimeout(5000, () => finish('timeout after ' + JSON.stringify(buf)));
    s.setEncoding('utf8');
    s.on('data', (d) => {
      buf += d;
      if (!greeted && buf.includes('Service default.\\n')) {
        greeted = true;
        out.maxGreetingMs = Math.max(out.maxGreetingMs, Date.now() - started);
        const m = /version (v\\d+)\\./.exec(buf);
        const v = m ? m[1] : 'unknown';
        out.versions[v] = (out.versions[v] || 0) + 1;
        buf = '';
        s.write('hello ' + i + '\\n');
        s.end();
      }
    });
    s.on('end', () => { if (buf === 'hello ' + i + '\\n') out.echoed++; else if (greeted) out.failures.push(i + ': echo ' + JSON.stringify(buf)); });
    s.on('close', () => finish(greeted ? null : 'closed before greeting: ' + JSON.stringify(buf)));
    s.on('error', (e) => finish(e.code || e.message));
  });
}
(async () => { for (let i = 0; i < count; i++) await one(i); console.log(JSON.stringify(out)); })();
`;

interface ClientSummary {
  versions: Record<string, number>;
  echoed: number;
  failures: string[];
  maxGreetingMs: number;
}

async function stats(topo: Topology): Promise<Map<string, number>> {
  const r = await topo.exec('ingress', ['curl', '-s', '--max-time', '5', 'http://127.0.0.1:15000/stats']);
  const m = new Map<string, number>();
  for (const line of r.stdout.split('\n')) {
    const i = line.lastIndexOf(': ');
    if (i > 0) m.set(line.slice(0, i), Number(line.slice(i + 2)));
  }
  return m;
}

t.test('S10: port 31400 reaches only v1, 31401 only v2; greeting arrives unsniffed; counted and logged', async (t) => {
  if (!(await requireRoot(t))) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-s10-'));
  fs.chmodSync(dir, 0o755);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const clientJs = path.join(dir, 'client.js');
  fs.writeFileSync(clientJs, CLIENT_JS);

  const topo = await Topology.create(
    t,
    [
      { name: 'edge', cidr: '198.18.4.0/24' },
      { name: 'v1net', cidr: '198.18.5.0/24' },
      { name: 'v2net', cidr: '198.18.6.0/24' },
    ],
    [
      { name: 'client', nets: [{ net: 'edge', address: CLIENT_IP }] },
      {
        name: 'ingress',
        nets: [{ net: 'edge', address: GATEWAY_IP }, { net: 'v1net', address: '198.18.5.1' }, { net: 'v2net', address: '198.18.6.1' }],
      },
      { name: 'echo1', nets: [{ net: 'v1net', address: V1_IP }] },
      { name: 'echo2', nets: [{ net: 'v2net', address: V2_IP }] },
    ],
  );
  const echo1 = topo.spawn('echo1', serverArgv('tcp-echo', ['--port', '3333', '--version', 'v1', '--node', 'echo1']), { name: 'echo-v1' });
  const echo2 = topo.spawn('echo2', serverArgv('tcp-echo', ['--port', '3333', '--version', 'v2', '--node', 'echo2']), { name: 'echo-v2' });
  await Promise.all([echo1.waitForLine(/^READY$/, 10_000), echo2.waitForLine(/^READY$/, 10_000)]);
  const gw: ProcHandle = topo.spawn(
    'ingress',
    sluiceArgv(['run', '--role', 'gateway', '--labels', 'istio=ingressgateway', '--namespace', 'istio-system', '--config', sample('s10'), '--access-log', 'stdout']),
    { uid: PROXY_UID, name: 'ingress' },
  );
  await gw.waitForLine(/sluice is live/, 15_000);

  // The seed's interaction, with the seed's client: nc, a line typed, echoed back.
  const nc = await topo.exec('client', ['nc', '-N', '-w', '5', GATEWAY_IP, '31400'], { input: 'hello, app1\ncontinue..\n', timeoutMs: 10_000 });
  t.equal(nc.code, 0, `nc exit code (stderr: ${nc.stderr})`);
  t.match(nc.stdout, /^Welcome, you are connected to node echo1, version v1\.\n/, 'nc to 31400: greeted by v1 first');
  t.ok(nc.stdout.endsWith('Service default.\nhello, app1\ncontinue..\n'), 'each line typed comes back');
  const nc2 = await topo.exec('client', ['nc', '-N', '-w', '5', GATEWAY_IP, '31401'], { input: 'hello, app2\n', timeoutMs: 10_000 });
  t.match(nc2.stdout, /^Welcome, you are connected to node echo2, version v2\.\n[^]*\nhello, app2\n$/, 'nc to 31401: v2 greets and echoes');
  t.equal(echo1.linesMatching(/^Received: hello, app1 from=198\.18\.5\.1:/).length, 1, 'v1 logged the line, from the gateway address');

  // Many connections: only v1 behind 31400, only v2 behind 31401, every greeting before any byte sent.
  for (const [port, version, other] of [[31400, 'v1', 'v2'], [31401, 'v2', 'v1']] as const) {
    const r = await topo.exec('client', [process.execPath, clientJs, GATEWAY_IP, String(port), String(CONNECTIONS)], { timeoutMs: 60_000 });
    t.equal(r.code, 0, `client on ${port} exited 0 (${r.stderr})`);
    const s = JSON.parse(r.stdout) as ClientSummary;
    t.same(s.failures, [], `no failed connection on ${port}`);
    t.same(s.versions, { [version]: CONNECTIONS }, `${CONNECTIONS} connections to ${port}: all ${version}, none ${other}`);
    t.equal(s.echoed, CONNECTIONS, 'every connection echoed its line');
    // The gateway's inspect bound is 10 s: a sniffing gateway would hold a server-first greeting that long.
    t.ok(s.maxGreetingMs < 5_000, `greeting arrived with nothing sent (slowest ${s.maxGreetingMs} ms, far below the 10 s sniff bound)`);
  }

  const st = await stats(topo);
  t.equal(st.get(`cluster.${V1_CLUSTER}.upstream_cx_total`), CONNECTIONS + 1, 'v1 cluster: one upstream connection per downstream');
  t.equal(st.get(`cluster.${V2_CLUSTER}.upstream_cx_total`), CONNECTIONS + 1, 'v2 cluster likewise');
  t.equal(st.get(`tcp.${V1_CLUSTER}.downstream_cx_total`), CONNECTIONS + 1, 'tcp proxy stat prefix is the cluster name (Istio)');
  t.equal(st.get('cluster.outbound|3333||tcp-echo.default.svc.cluster.local.upstream_cx_total') ?? 0, 0, 'the subset-less cluster was never used');
  const greetingBytes = Buffer.byteLength(nc.stdout) - Buffer.byteLength('hello, app1\ncontinue..\n');
  t.ok(greetingBytes > 100, 'greeting size');
  // Bytes: from downstream = the lines sent; from upstream = greeting + echoes. Summed over all connections.
  const v1Rx = st.get(`cluster.${V1_CLUSTER}.upstream_cx_rx_bytes_total`)!;
  const v1Tx = st.get(`cluster.${V1_CLUSTER}.upstream_cx_tx_bytes_total`)!;
  const linesV1 = Buffer.byteLength('hello, app1\ncontinue..\n') + Array.from({ length: CONNECTIONS }, (_, i) => Buffer.byteLength(`hello ${i}\n`)).reduce((a, b) => a + b, 0);
  t.equal(v1Tx, linesV1, 'upstream_cx_tx_bytes_total = bytes the clients sent');
  t.equal(st.get(`tcp.${V1_CLUSTER}.downstream_cx_rx_bytes_total`), linesV1, 'downstream_cx_rx_bytes_total agrees');
  t.equal(v1Rx, st.get(`tcp.${V1_CLUSTER}.downstream_cx_tx_bytes_total`), 'every byte from v1 reached a client');
  t.equal(v1Rx, (CONNECTIONS + 1) * greetingBytes + linesV1, 'upstream_cx_rx_bytes_total = greetings + echoes');

  // Istio's TCP access-log line: "- - -" 0 - ... bytes received, sent ... upstream host, cluster.
  const line = await gw.waitForLine(/"- - -" 0 - .*"198\.18\.5\.10:3333" outbound\|3333\|v1\|tcp-echo/, 5_000);
  const sent = Buffer.byteLength('hello, app1\ncontinue..\n');
  t.match(line, new RegExp(`"- - -" 0 - - - "-" ${sent} ${greetingBytes + sent} \\d+ `), `first line: ${sent} bytes received, greeting+echo sent`);
  t.match(line, new RegExp(` ${GATEWAY_IP.replace(/\./g, '\\.')}:31400 ${CLIENT_IP.replace(/\./g, '\\.')}:\\d+ `), 'downstream local and remote addresses');
  t.equal(gw.linesMatching(/"- - -" 0 - .*outbound\|3333\|v2\|tcp-echo/).length, CONNECTIONS + 1, 'one log line per v2 connection');
});
