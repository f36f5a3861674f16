// Seed 002 (S7-S9) on real kernels: two "clusters" of network namespaces, sleep's sidecar in
// cluster1 calling httpbin behind its own sidecar in cluster2 through cluster2's ingress gateway on
// 15443 (AUTO_PASSTHROUGH; the mTLS passes it untouched and is terminated by httpbin's inbound side).
//
//   cluster1 198.18.6.0/24                         cluster2 198.18.7.0/24
//   sleep 198.18.6.2 ── egress 198.18.6.1 | 198.18.7.1 (routes) ── ingress 198.18.7.10
//                                                                ── httpbin 198.18.7.20 (app :8000 + sidecar)
//
// The ServiceEntries are the seed's (config/samples/s7..s9), with 198.18.7.10 for ${CLUSTER2_GW_ADDR};
// the VIP 127.255.0.2 is caught by `sluice iptables` (loopback VIP rule), named by /etc/hosts or by
// the sidecar's DNS proxy (--redirect-dns + --dns-capture).

import t from 'tap';
import { makeCa, makeWorkloadCerts, type WorkloadCerts } from './harness/certs';
import { serverArgv, sluiceArgv } from './harness/paths';
import { PROXY_UID, requireRoot } from './harness/prereqs';
import type { ProcHandle } from './harness/proc-handle';
import { Topology } from './harness/topology';
import { sample } from './egress-mesh';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const EGRESS_SVC = 'istio-egressgateway.istio-system.svc.cluster.local';
const SLEEP_ID = 'spiffe://cluster.local/ns/foo/sa/sleep';
const HTTPBIN_ID = 'spiffe://cluster.local/ns/bar/sa/httpbin';
const INGRESS_DNAT = 'cluster.outbound_.8000_._.httpbin.bar.svc.cluster.local';

interface World {
  topo: Topology;
  sleepCerts: WorkloadCerts;
  httpbinCerts: WorkloadCerts;
  ingress: ProcHandle;
}

async function buildWorld(t: { teardown(fn: () => unknown): void }): Promise<World> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-e2e-mc-'));
  fs.chmodSync(dir, 0o755);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const topo = await Topology.create(t, [{ name: 'c1', cidr: '198.18.6.0/24' }, { name: 'c2', cidr: '198.18.7.0/24' }], [
    { name: 'sleep', nets: [{ net: 'c1', address: '198.18.6.2' }], defaultVia: '198.18.6.1', hosts: { 'httpbin.bar.global': '127.255.0.2', [EGRESS_SVC]: '198.18.6.1' } },
    { name: 'egress', nets: [{ net: 'c1', address: '198.18.6.1' }, { net: 'c2', address: '198.18.7.1' }], forwarding: true, hosts: { [EGRESS_SVC]: '198.18.6.1' } },
    { name: 'ingress', nets: [{ net: 'c2', address: '198.18.7.10' }], defaultVia: '198.18.7.1' },
    { name: 'httpbin', nets: [{ net: 'c2', address: '198.18.7.20' }], defaultVia: '198.18.7.1' },
  ]);
  const ca = await makeCa(path.join(dir, 'ca'), 'mesh-ca');
  const sleepCerts = await makeWorkloadCerts(path.join(dir, 'sleep'), ca, SLEEP_ID);
  const httpbinCerts = await makeWorkloadCerts(path.join(dir, 'httpbin'), ca, HTTPBIN_ID);
  const app = topo.spawn('httpbin', serverArgv('httpbin', ['--port', '8000']), { name: 'httpbin-app' });
  await app.waitForLine(/READY/, 10_000);
  const ingress = topo.spawn('ingress', sluiceArgv(['run', '--role', 'gateway', '--labels', 'istio=ingressgateway', '--config', sample('s7/cluster2'), '--concurrency', '1']), { uid: PROXY_UID, name: 'ingress' });
  await ingress.waitForLine(/sluice is live/, 15_000);
  return { topo, sleepCerts, httpbinCerts, ingress };
}

async function iptables(w: World, host: string, args: string[] = []): Promise<void> {
  await w.topo.exec(host, sluiceArgv(['iptables', '--clean']));
  const r = await w.topo.exec(host, sluiceArgv(['iptables', ...args]));
  if (r.code !== 0) throw new Error(`sluice iptables ${args.join(' ')} in ${host}: ${r.stderr}${r.stdout}`);
}

async function sidecar(w: World, host: string, args: string[]): Promise<ProcHandle> {
  const p = w.topo.spawn(host, sluiceArgv(['run', '--role', 'sidecar', '--access-log-format', 'json', '--concurrency', '1', ...args]), { uid: PROXY_UID, name: host + '-sidecar' });
  await p.waitForLine(/sluice is live/, 15_000);
  return p;
}

async function stat(w: World, host: string, name: string): Promise<number> {
  const r = await w.topo.exec(host, ['curl', '-s', '--max-time', '5', 'http://127.0.0.1:15000/stats']);
  for (const line of r.stdout.split('\n')) if (line.startsWith(name + ': ')) return Number(line.slice(name.length + 2));
  return 0;
}

async function curl(w: World, host: string, url: string): Promise<{ code: number; body: string; err: string }> {
  const r = await w.topo.exec(host, ['curl', '-sS', '--max-time', '8', url], { timeoutMs: 12_000 });
  return { code: r.code ?? -1, body: r.stdout, err: r.stderr };
}

/** httpbin's sidecar, PERMISSIVE unless told, serving the seed's httpbin pod (labels of the cluster2 endpoint). */
function httpbinSidecar(w: World, extra: string[] = []): Promise<ProcHandle> {
  return sidecar(w, 'httpbin', ['--namespace', 'bar', '--labels', 'app=httpbin,version=beta', '--config', sample('s7/cluster2'), '--certs', w.httpbinCerts.dir, ...extra]);
}

function sleepSidecar(w: World, scenario: string, extra: string[] = []): Promise<ProcHandle> {
  return sidecar(w, 'sleep', ['--namespace', 'foo', '--config', sample(scenario), '--certs', w.sleepCerts.dir, ...extra]);
}

t.test('S7-S9 and the inbound side', async (t) => {
  if (!(await requireRoot(t))) return;
  const w = await buildWorld(t);
  await iptables(w, 'httpbin');
  let inbound = await httpbinSidecar(w);

  await t.test('S7 with /etc/hosts: mTLS through the remote gateway untouched, terminated by httpbin\'s sidecar', async (t) => {
    await iptables(w, 'sleep');
    const sleep = await sleepSidecar(w, 's7');
    const ip = await curl(w, 'sleep', 'http://httpbin.bar.global:8000/ip');
    t.equal(ip.code, 0, `curl (stderr ${ip.err})`);
    t.same(JSON.parse(ip.body), { origin: '127.0.0.6' }, 'the app is reached on localhost from 127.0.0.6 (InboundPassthroughCluster)');
    const headers = JSON.parse((await curl(w, 'sleep', 'http://httpbin.bar.global:8000/headers')).body).headers as Record<string, string>;
    t.match(headers['x-forwarded-client-cert'], new RegExp(`^By=${HTTPBIN_ID};Hash=[0-9a-f]{64};Subject="[^"]*";URI=${SLEEP_ID}$`), 'x-forwarded-client-cert as Istio sets it');
    t.ok(await stat(w, 'ingress', INGRESS_DNAT + '.upstream_cx_total') >= 1, 'ingress: the SNI cluster (.global mapped to .svc.cluster.local) carried it');
    t.equal(await stat(w, 'ingress', 'listener.0.0.0.0_15443.ssl.handshake'), 0, 'ingress: no TLS terminated there');
    t.ok(await stat(w, 'httpbin', 'listener.0.0.0.0_15006.ssl.handshake') >= 1, 'httpbin sidecar: terminated the mTLS');
    t.ok(await stat(w, 'httpbin', 'cluster.inbound|8000||.upstream_rq_total') >= 2, 'inbound|8000|| stats');
    const line = await inbound.waitForLine(/"upstream_cluster":"inbound\|8000\|\|".*"downstream_peer_uri_san":"spiffe:\/\/cluster\.local\/ns\/foo\/sa\/sleep","direction":"inbound"/, 5_000);
    t.match(line, /"path":"\/ip"/, 'access log: inbound, with the peer identity');
    await sleep.waitForLine(/"upstream_cluster":"outbound\|8000\|\|httpbin\.bar\.global".*"direction":"outbound"/, 5_000);
    await sleep.stop();
  });

  await t.test('S7 with --redirect-dns + --dns-capture and no hosts entry', async (t) => {
    w.topo.setHosts('sleep', { [EGRESS_SVC]: '198.18.6.1' });
    await iptables(w, 'sleep', ['--redirect-dns']);
    const sleep = await sleepSidecar(w, 's7', ['--dns-capture']);
    const dig = await w.topo.exec('sleep', ['dig', '+short', '+time=2', '+tries=1', 'httpbin.bar.global'], { timeoutMs: 10_000 });
    t.equal(dig.stdout.trim(), '127.255.0.2', `dig through the captured port 53 (stderr ${dig.stderr})`);
    const tcp = await w.topo.exec('sleep', ['dig', '+short', '+tcp', '+time=2', '+tries=1', 'httpbin.bar.global'], { timeoutMs: 10_000 });
    t.equal(tcp.stdout.trim(), '127.255.0.2', 'and over TCP');
    const ip = await curl(w, 'sleep', 'http://httpbin.bar.global:8000/ip');
    t.equal(ip.code, 0, `curl by name (stderr ${ip.err})`);
    t.same(JSON.parse(ip.body || '{}'), { origin: '127.0.0.6' });
    await sleep.stop();
    w.topo.setHosts('sleep', { 'httpbin.bar.global': '127.255.0.2', [EGRESS_SVC]: '198.18.6.1' });
    await iptables(w, 'sleep');
  });

  await t.test('S8: everything leaves through cluster1\'s egress gateway, which passes it on by SNI', async (t) => {
    const egress = w.topo.spawn('egress', sluiceArgv(['run', '--role', 'gateway', '--labels', 'istio=egressgateway', '--network', 'external', '--config', sample('s8'), '--certs', w.sleepCerts.dir, '--concurrency', '1']), { uid: PROXY_UID, name: 'egress' });
    await egress.waitForLine(/sluice is live/, 15_000);
    const sleep = await sleepSidecar(w, 's8');
    const before = w.ingress.mark();
    for (let i = 0; i < 4; i++) {
      const r = await w.topo.exec('sleep', ['curl', '-sS', '--max-time', '8', '-H', 'connection: close', 'http://httpbin.bar.global:8000/ip'], { timeoutMs: 12_000 });
      t.equal(r.code, 0, `request ${i} (stderr ${r.stderr})`);
    }
    t.ok(await stat(w, 'egress', 'cluster.outbound_.8000_._.httpbin.bar.global.upstream_cx_total') >= 1, 'egress gateway: its SNI cluster carried it');
    t.equal(await stat(w, 'egress', 'listener.0.0.0.0_15443.ssl.handshake'), 0, 'egress gateway: not terminated');
    await sleep.stop();
    await egress.stop();
    const froms = w.ingress.linesMatching(/outbound_\.8000_\._\.httpbin\.bar\.svc\.cluster\.local/, before).map((l) => / (198\.18\.\d+\.\d+):\d+ outbound_/.exec(l)?.[1] ?? / 198\.18\.7\.10:15443 (198\.18\.\d+\.\d+):/.exec(l)?.[1]);
    t.ok(froms.length >= 1, 'the ingress logged the connections');
    t.same([...new Set(froms)], ['198.18.7.1'], 'all from the egress gateway, none straight from sleep (198.18.6.2)');
  });

  await t.test('S9: the versioned subset, resolved against cluster2\'s DestinationRule', async (t) => {
    const sleep = await sleepSidecar(w, 's9');
    const ip = await curl(w, 'sleep', 'http://httpbin.bar.global:8000/ip');
    t.equal(ip.code, 0, `curl (stderr ${ip.err})`);
    t.ok(await stat(w, 'ingress', 'cluster.outbound_.8000_.beta_.httpbin.bar.svc.cluster.local.upstream_cx_total') >= 1, 'ingress: the beta subset\'s SNI cluster');
    await sleep.stop();
  });

  await t.test('PERMISSIVE serves a plain client; STRICT refuses it with a log line and still serves mTLS', async (t) => {
    const plain = await curl(w, 'ingress', 'http://198.18.7.20:8000/ip');
    t.equal(plain.code, 0, `plain text under PERMISSIVE (stderr ${plain.err})`);
    await inbound.waitForLine(/"upstream_cluster":"inbound\|8000\|\|".*"downstream_peer_uri_san":null,"direction":"inbound"/, 5_000);
    await inbound.stop();
    inbound = await httpbinSidecar(w, ['--mtls-mode', 'STRICT']);
    const refused = await curl(w, 'ingress', 'http://198.18.7.20:8000/ip');
    t.not(refused.code, 0, `plain text under STRICT is refused (curl exit ${refused.code})`);
    await inbound.waitForLine(/inbound plain-text connection refused: mTLS mode STRICT/, 5_000);
    const sleep = await sleepSidecar(w, 's7');
    const mtls = await curl(w, 'sleep', 'http://httpbin.bar.global:8000/ip');
    t.equal(mtls.code, 0, `mTLS under STRICT (stderr ${mtls.err})`);
    await sleep.stop();
  });
});
