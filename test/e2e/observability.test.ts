// What an operator reads from a running egress gateway after real traffic: the seed's
// own `curl -s localhost:15000/stats | grep edition.cnn.com.upstream_cx_total` run verbatim inside
// the gateway's network namespace, /stats (text and JSON), /stats/prometheus parsed with the
// exposition rules (on the admin and on 15090, scraped from another host), /clusters (text and
// JSON), /config_dump, /explain on the live config, the access log and the audit log — every number
// checked against what the external host and the other proxy observed.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parsePrometheus, type Family } from '../unit/proxy/observe/prom-parse';
import { requireRoot } from './harness/prereqs';
import { distFile } from './harness/paths';
import { admin, buildEgressMesh, externalConnections, GATEWAY_MESH_IP, sample, startGateway, startSidecar, stat } from './egress-mesh';

const CNN80 = 'outbound|80||edition.cnn.com';
const GW_CLUSTER = 'outbound|80|cnn|istio-egressgateway.istio-system.svc.cluster.local';
const REQUESTS = 3;

/** The value of the one sample named `name` with exactly these labels (histogram `_count` etc. included). */
function promValue(families: Family[], name: string, labels: Record<string, string>): number | undefined {
  for (const f of families) {
    for (const s of f.samples) {
      if (s.name === name && Object.keys(labels).length === Object.keys(s.labels).length && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return undefined;
}

/** `sluice explain` on the sample files, run as users run it. */
function explainCli(args: string[]): string {
  return execFileSync(process.execPath, [distFile('proxy/cli.js'), 'explain', ...args], { encoding: 'utf8' });
}

for (const concurrency of [1, 2]) t.test(`S2 gateway (--concurrency ${concurrency}) after real traffic: /stats, prometheus, /clusters, /config_dump, /explain, access and audit logs`, async (t) => {
  if (!(await requireRoot(t))) return;
  const mesh = await buildEgressMesh(t, { forwarding: false });
  const logDir = path.join(mesh.dir, 'audit');
  fs.mkdirSync(logDir, { mode: 0o777 });
  fs.chmodSync(logDir, 0o777); // the gateway runs as uid 1337
  const auditFile = path.join(logDir, 'audit.log');
  const gateway = await startGateway(mesh, sample('s2'), ['--audit-log', auditFile, '--concurrency', String(concurrency)]);
  await startSidecar(mesh, sample('s2'));

  for (let i = 0; i < REQUESTS; i++) {
    const r = await mesh.topo.exec('app', ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', 'http://edition.cnn.com/politics'], { timeoutMs: 10_000 });
    t.equal(r.stdout, '301', `request ${i + 1}: the external host's 301 through sidecar and gateway`);
  }
  const upstreamConns = externalConnections(mesh, /^GET \/politics .*scheme=http$/);
  t.same([...upstreamConns].map((c) => c.split(':')[0]), Array(upstreamConns.size).fill('198.18.2.1'), 'every request left from the gateway host');
  const sidecarToGateway = await stat(mesh, 'app', `cluster.${GW_CLUSTER}.upstream_cx_total`);

  // The seed's command, verbatim, in the gateway's namespace (admin on its loopback).
  const seed = await mesh.topo.exec('gateway', ['sh', '-c', 'curl -s localhost:15000/stats | grep edition.cnn.com.upstream_cx_total']);
  // Two lines, as Envoy prints them: the S1 ServiceEntry also declares 443 (unused here, so 0).
  t.equal(seed.stdout, `cluster.outbound|443||edition.cnn.com.upstream_cx_total: 0\ncluster.${CNN80}.upstream_cx_total: ${upstreamConns.size}\n`, 'seed command: one count per connection the external host saw');

  // /stats text: exact values, cross-checked with the other side of each hop.
  const text = await admin(mesh, 'gateway', '/stats');
  const lines = text.split('\n').filter((l) => l !== '');
  const value = (name: string): number | undefined => {
    const l = lines.find((x) => x.startsWith(name + ': '));
    return l === undefined ? undefined : Number(l.slice(name.length + 2));
  };
  const counterLines = lines.filter((l) => /^[^ ]+: -?\d+$/.test(l)).map((l) => l.slice(0, l.indexOf(':')));
  t.same(counterLines, [...counterLines].sort(), 'counters and gauges sorted by name, as Envoy');
  const expected: Record<string, number | undefined> = {
    [`cluster.${CNN80}.upstream_cx_total`]: upstreamConns.size,
    [`cluster.${CNN80}.upstream_cx_connect_fail`]: 0,
    [`cluster.${CNN80}.upstream_rq_total`]: REQUESTS,
    [`cluster.${CNN80}.upstream_rq_completed`]: REQUESTS,
    [`cluster.${CNN80}.upstream_rq_301`]: REQUESTS,
    [`cluster.${CNN80}.upstream_rq_3xx`]: REQUESTS,
    [`cluster.${CNN80}.upstream_rq_active`]: 0,
    [`cluster.${CNN80}.membership_total`]: 1,
    [`cluster.${CNN80}.membership_healthy`]: 1,
    'listener.0.0.0.0_80.downstream_cx_total': sidecarToGateway ?? -1,
    'http.outbound_0.0.0.0_80.downstream_rq_total': REQUESTS,
    'http.outbound_0.0.0.0_80.downstream_rq_3xx': REQUESTS,
    'http.outbound_0.0.0.0_80.downstream_rq_2xx': 0,
    'http.outbound_0.0.0.0_80.downstream_rq_active': 0,
    'access_log.written': REQUESTS,
    'access_log.dropped': 0,
    'audit_log.written': REQUESTS,
    'audit_log.dropped': 0,
    'server.live': 1,
  };
  for (const [name, v] of Object.entries(expected)) t.equal(value(name), v, `${name}: ${v}`);
  t.ok((value('server.uptime') ?? -1) >= 0, 'server.uptime present');
  t.ok((value('server.memory_allocated') ?? 0) > 0, 'server.memory_allocated present');
  t.ok((value('server.concurrency') ?? 0) >= 1, 'server.concurrency present');
  t.match(text, new RegExp(`^cluster\\.outbound\\|80\\|\\|edition\\.cnn\\.com\\.upstream_rq_time: P0\\(`, 'm'), 'request-time histogram recorded');
  t.match(text, /^cluster\.outbound\|80\|\|edition\.cnn\.com\.upstream_cx_connect_ms: P0\(/m, 'connect-time histogram recorded');
  t.match(text, /^http\.outbound_0\.0\.0\.0_80\.downstream_rq_time: P0\(/m, 'downstream request-time histogram recorded');

  const filtered = await admin(mesh, 'gateway', '/stats?filter=' + encodeURIComponent('upstream_rq_3xx$') + '&usedonly');
  t.equal(filtered, `cluster.${CNN80}.upstream_rq_3xx: ${REQUESTS}\n`, '?filter (partial regex) and ?usedonly');
  const json = JSON.parse(await admin(mesh, 'gateway', '/stats?format=json')) as { stats: { name?: string; value?: number }[] };
  t.equal(json.stats.find((s) => s.name === `cluster.${CNN80}.upstream_rq_total`)?.value, REQUESTS, '?format=json');

  // Prometheus, parsed with the exposition rules: the admin endpoint and 15090 scraped from the app host.
  const promAdmin = parsePrometheus(await admin(mesh, 'gateway', '/stats/prometheus'));
  const scrape = await mesh.topo.exec('app', ['curl', '-s', '--max-time', '5', `http://${GATEWAY_MESH_IP}:15090/stats/prometheus`]);
  t.equal(scrape.code, 0, '15090 answers from another host');
  const prom15090 = parsePrometheus(scrape.stdout);
  for (const fams of [promAdmin, prom15090]) {
    t.equal(promValue(fams, 'envoy_cluster_upstream_cx_total', { cluster_name: CNN80 }), upstreamConns.size, 'envoy_cluster_upstream_cx_total{cluster_name}');
    t.equal(promValue(fams, 'envoy_cluster_upstream_rq', { cluster_name: CNN80, response_code: '301' }), REQUESTS, 'upstream_rq_301 -> response_code label');
    t.equal(promValue(fams, 'envoy_cluster_upstream_rq', { cluster_name: CNN80, response_code_class: '3xx' }), REQUESTS, 'upstream_rq_3xx -> response_code_class label');
    t.equal(promValue(fams, 'envoy_http_downstream_rq_total', { http_conn_manager_prefix: 'outbound_0.0.0.0_80' }), REQUESTS, 'HCM prefix label');
    t.equal(promValue(fams, 'envoy_listener_downstream_cx_total', { listener_address: '0.0.0.0_80' }), sidecarToGateway, 'listener_address label');
    t.equal(fams.find((f) => f.name === 'envoy_cluster_upstream_rq_time')?.type, 'histogram', 'histograms typed as such');
    t.equal(promValue(fams, 'envoy_cluster_upstream_rq_time_count', { cluster_name: CNN80 }), REQUESTS, 'histogram _count = requests');
  }

  // /clusters: Envoy's text lines with the resolved endpoint, and JSON.
  const clusters = await admin(mesh, 'gateway', '/clusters');
  for (const l of [
    `${CNN80}::default_priority::max_connections::4294967295`,
    `${CNN80}::added_via_api::true`,
    `${CNN80}::198.18.2.10:80::cx_total::${upstreamConns.size}`,
    `${CNN80}::198.18.2.10:80::cx_connect_fail::0`,
    `${CNN80}::198.18.2.10:80::rq_total::${REQUESTS}`,
    `${CNN80}::198.18.2.10:80::rq_success::${REQUESTS}`,
    `${CNN80}::198.18.2.10:80::hostname::edition.cnn.com`,
    `${CNN80}::198.18.2.10:80::health_flags::healthy`,
  ]) t.ok(clusters.split('\n').includes(l), `/clusters: ${l}`);
  const cj = JSON.parse(await admin(mesh, 'gateway', '/clusters?format=json')) as { cluster_statuses: { name: string; host_statuses: { address: { socket_address: { address: string; port_value: number } }; stats: { name: string; value: string }[] }[] }[] };
  const cnn = cj.cluster_statuses.find((c) => c.name === CNN80);
  t.same(cnn?.host_statuses.map((h) => h.address.socket_address), [{ address: '198.18.2.10', port_value: 80 }], '/clusters?format=json endpoint');
  t.equal(cnn?.host_statuses[0]?.stats.find((s) => s.name === 'rq_total')?.value, String(REQUESTS), 'uint64 as string, proto3 JSON');

  // /config_dump: the compiled config and the source resources.
  const dump = JSON.parse(await admin(mesh, 'gateway', '/config_dump')) as { configs: Record<string, unknown>[] };
  const byType = (suffix: string): Record<string, unknown> => dump.configs.find((c) => String(c['@type']).endsWith(suffix))!;
  const dynClusters = byType('ClustersConfigDump')['dynamic_active_clusters'] as { cluster: { name: string; type: string } }[];
  t.same(dynClusters.find((c) => c.cluster.name === CNN80)?.cluster.type, 'STRICT_DNS', 'config_dump: the cluster and its discovery type');
  const listeners = byType('ListenersConfigDump')['dynamic_listeners'] as { name: string }[];
  t.same(listeners.map((l) => l.name), ['0.0.0.0_80'], 'config_dump: the gateway listener');
  const istio = byType('IstioResourcesConfigDump') as { virtual_services: { metadata: { name: string } }[]; gateways: { metadata: { name: string } }[] };
  t.same([istio.virtual_services.map((v) => v.metadata.name), istio.gateways.map((g) => g.metadata.name)], [['direct-cnn-through-egress-gateway'], ['istio-egressgateway']], 'config_dump: the source resources');

  // /explain on the live config agrees with `sluice explain` on the files and with what happened.
  const live = await admin(mesh, 'gateway', '/explain?url=' + encodeURIComponent('http://edition.cnn.com/politics'));
  t.ok(live.split('\n').includes(`endpoint:  198.18.2.10:80 healthy (edition.cnn.com) cx_active=${upstreamConns.size} cx_total=${upstreamConns.size} cx_connect_fail=0 rq_total=${REQUESTS}`) ||
    live.split('\n').includes(`endpoint:  198.18.2.10:80 healthy (edition.cnn.com) cx_active=0 cx_total=${upstreamConns.size} cx_connect_fail=0 rq_total=${REQUESTS}`), `live endpoint health and counters:\n${live}`);
  const cli = explainCli(['--config', sample('s2'), '--role', 'gateway', '--labels', 'istio=egressgateway', '--url', 'http://edition.cnn.com/politics']);
  const pick = (s: string, label: string): string[] => s.split('\n').filter((l) => l.startsWith(label + ':'));
  for (const label of ['listener', 'chain', 'vhost', 'skipped', 'route', 'cluster', 'result']) t.same(pick(live, label), pick(cli, label), `explain ${label}: live == CLI`);
  const logLine = await gateway.waitForLine(/"GET \/politics HTTP\/1\.1" 301/, 5_000);
  t.match(logLine, new RegExp(` ${CNN80.replace(/\|/g, '\\|')} `), 'the access log names the cluster explain predicted');
  t.same(pick(cli, 'cluster').map((l) => l.split(/\s+/)[1]), [CNN80]);

  // Access log and audit log: one line per request each.
  t.equal(gateway.linesMatching(/"GET \/politics HTTP\/1\.1" 301 /).length, REQUESTS, 'one access-log line per request');
  // One file per process that carries traffic: audit.log, or audit.log.worker-<i> per worker.
  const auditFiles = fs.readdirSync(logDir).filter((f) => f.startsWith('audit.log'));
  t.same(auditFiles.length, concurrency, `audit files: ${auditFiles.join(', ')}`);
  const audit = auditFiles.map((f) => fs.readFileSync(path.join(logDir, f), 'utf8')).join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(audit.length, REQUESTS, 'one audit line per request');
  for (const a of audit) {
    t.match(a, { destination: 'edition.cnn.com', port: 80, cluster: CNN80, upstream_host: '198.18.2.10:80', response_code: 301, response_flags: '-', method: 'GET', path: '/politics' });
    t.match(a['source'], /^198\.18\.1\.2:\d+$/, 'source: the sidecar host (no client certificate on this hop)');
  }
});

t.test('S4 passthrough gateway: tcp.* and listener stats, and explain by SNI', async (t) => {
  if (!(await requireRoot(t))) return;
  const mesh = await buildEgressMesh(t, { forwarding: false });
  await startGateway(mesh, sample('s4'));
  await startSidecar(mesh, sample('s4'));
  const CNN443 = 'outbound|443||edition.cnn.com';
  for (let i = 0; i < 2; i++) {
    const r = await mesh.topo.exec('app', ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', '--cacert', mesh.ca.certFile, 'https://edition.cnn.com/politics'], { timeoutMs: 10_000 });
    t.equal(r.stdout, '200', `HTTPS request ${i + 1} through both proxies`);
  }
  const conns = externalConnections(mesh, /scheme=https$/).size;
  t.equal(conns, 2, 'one TLS connection each, end to end');
  for (const [name, v] of [
    [`cluster.${CNN443}.upstream_cx_total`, 2],
    [`tcp.${CNN443}.downstream_cx_total`, 2],
    ['listener.0.0.0.0_443.downstream_cx_total', 2],
    ['listener.0.0.0.0_443.no_filter_chain_match', 0],
  ] as const) t.equal(await stat(mesh, 'gateway', name), v, `${name}: ${v}`);
  const rx = await stat(mesh, 'gateway', `tcp.${CNN443}.downstream_cx_rx_bytes_total`);
  const tx = await stat(mesh, 'gateway', `tcp.${CNN443}.downstream_cx_tx_bytes_total`);
  t.ok(rx !== null && rx > 0 && tx !== null && tx > 151654 * 2, `tcp bytes counted (rx ${rx}, tx ${tx} > two 151654-byte bodies)`);
  const live = await admin(mesh, 'gateway', '/explain?sni=edition.cnn.com&port=443');
  t.ok(live.split('\n').includes(`cluster:   ${CNN443}  (type STRICT_DNS, lb LEAST_REQUEST, connect timeout 10000 ms)`), 'explain by SNI on the live config');
  t.match(live, /^endpoint:  198\.18\.2\.10:443 healthy \(edition\.cnn\.com\) cx_active=\d+ cx_total=2 /m, 'with the counted connections');
});
