import t, { type Test } from 'tap';
import pino from 'pino';
import { Writable } from 'node:stream';
import type { Cluster, Snapshot } from '../../../../config/compile/snapshot';
import type { AdminContext, ClusterStatus, ServerState } from '../../../../proxy/admin/context';
import { POST_REQUIRED, startAdmin, startHealthListener, startPrometheusListener } from '../../../../proxy/admin/server';
import { CONFIG_DUMP_TYPES, REDACTED } from '../../../../proxy/admin/handlers/config-dump';
import { ClusterStats, StatsStore } from '../../../../proxy/observe/stats';
import { parsePrometheus } from '../observe/prom-parse';

const CNN = 'outbound|443||edition.cnn.com';
const PEM = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n';

/** A gateway snapshot in the S3 shape: one HTTP listener, one TLS-originating cluster. */
function gatewaySnapshot(): Snapshot {
  const cnn: Cluster = {
    name: CNN, sniName: 'outbound_.443_._.edition.cnn.com', type: 'STRICT_DNS', host: 'edition.cnn.com', port: 443, subset: '', protocol: 'HTTP',
    endpoints: [{ address: 'edition.cnn.com', port: 443, labels: {}, weight: 1, locality: '', network: '' }],
    lb: { kind: 'LEAST_REQUEST' }, connectTimeoutMs: 10000, idleTimeoutMs: 3600000, maxRequestsPerConnection: 0, tcpKeepalive: null, dnsRefreshMs: 5000,
    circuitBreakers: { maxConnections: 4294967295, maxPendingRequests: 4294967295, maxRequests: 4294967295, maxRetries: 4294967295 },
    tls: { mode: 'MUTUAL', sni: 'edition.cnn.com', autoSni: false, caFile: '/etc/certs/root-cert.pem', certFile: '/etc/certs/cert-chain.pem', keyFile: '/etc/certs/key.pem', subjectAltNames: [], insecureSkipVerify: false, alpn: [] },
    emptyReason: null,
  };
  const vhost = {
    name: 'edition.cnn.com:80', domains: ['edition.cnn.com', 'edition.cnn.com:80'],
    routes: [{
      name: 'default', source: null,
      match: { uri: { kind: 'regex' as const, regex: /^\/politics.*$/ }, scheme: null, method: null, authority: null, headers: [], queryParams: [] },
      action: { kind: 'forward' as const, clusters: { entries: [{ cluster: CNN, weight: 100 }], totalWeight: 100 }, timeoutMs: 0, rewrite: null, requestHeaders: null, responseHeaders: null, retry: null },
    }],
  };
  const routeConfig = { name: 'http.80', virtualHosts: [vhost], exactDomains: new Map([['edition.cnn.com', vhost]]), wildcardDomains: [], defaultHost: null };
  return {
    role: 'gateway', namespace: 'istio-system', labels: { istio: 'egressgateway' }, version: 'v1-test', outboundPolicy: 'ALLOW_ANY',
    listeners: new Map([['0.0.0.0_80', {
      name: '0.0.0.0_80', address: '0.0.0.0', port: 80, protocol: 'http' as const, needsTlsInspection: false,
      chains: [{
        name: 'default', match: { serverNames: { exact: new Set(['edition.cnn.com']), suffixes: [], any: false }, transport: 'any' as const, applicationProtocols: null, destinationPrefixes: null },
        tls: null, filter: { kind: 'http' as const, statPrefix: 'outbound_0.0.0.0_80', routeConfig, httpsRedirect: false },
      }],
    }]]),
    catchAll: { tcpCluster: 'PassthroughCluster', httpHost: { name: 'allow_any', domains: ['*'], routes: [] } },
    clusters: new Map([[CNN, cnn]]),
    warnings: [],
    resources: {
      serviceEntries: [], gateways: [], virtualServices: [],
      destinationRules: [{
        kind: 'DestinationRule', apiVersion: 'networking.istio.io/v1', metadata: { name: 'originate', namespace: 'istio-system' }, origin: { file: 'dr.yaml', doc: 1 },
        // Someone pasted key material where a path belongs: it must never be printed back.
        spec: { host: 'edition.cnn.com', trafficPolicy: { tls: { mode: 'MUTUAL', clientCertificate: '/etc/certs/cert-chain.pem', privateKey: PEM } } },
      }],
    },
  };
}

class FakeContext implements AdminContext {
  readonly stats = new StatsStore();
  readonly cnn = new ClusterStats(this.stats, CNN);
  serverState: ServerState = 'LIVE';
  healthFailed = false;
  logLevel = 'info';
  quitCalls = 0;
  onQuit: () => void = () => {};
  snap: Snapshot | null = gatewaySnapshot();
  clustersFail = false;
  snapshot(): Snapshot | null {
    return this.snap;
  }
  state(): ServerState {
    return this.healthFailed ? 'DRAINING' : this.serverState;
  }
  setHealthCheckFailed(failed: boolean): void {
    this.healthFailed = failed;
  }
  clusters(): readonly ClusterStatus[] {
    if (this.clustersFail) throw new Error('cluster manager exploded');
    return [{
      name: CNN, addedViaApi: true,
      circuitBreakers: { maxConnections: 4294967295, maxPendingRequests: 4294967295, maxRequests: 4294967295, maxRetries: 4294967295 },
      hosts: [{
        address: '151.101.1.67', port: 443, hostname: 'edition.cnn.com', healthy: true, weight: 1, locality: 'us-east/us-east-1a/',
        stats: { cx_active: 1, cx_connect_fail: 0, cx_total: 2, rq_active: 0, rq_error: 0, rq_success: 2, rq_timeout: 0, rq_total: 2 },
      }],
    }];
  }
  listeners(): readonly { name: string; address: string }[] {
    return [{ name: '0.0.0.0_80', address: '0.0.0.0:80' }, { name: 'virtualOutbound', address: '[::]:15001' }];
  }
  serverInfo(): Record<string, unknown> {
    return { version: 'sluice/test', node: { id: 'gateway~test~istio-system', cluster: 'gateway' } };
  }
  setLogLevel(level: string): void {
    this.logLevel = level;
  }
  quit(): void {
    this.quitCalls++;
    this.onQuit();
  }
}

async function setup(t: Test): Promise<{ ctx: FakeContext; url: (p: string) => string; logs: Record<string, unknown>[] }> {
  const ctx = new FakeContext();
  ctx.cnn.upstream_cx_total.add(2);
  ctx.cnn.upstream_cx_active.set(1);
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, new Writable({ write(c, _e, cb) { logs.push(JSON.parse(String(c))); cb(); } }));
  const admin = await startAdmin(ctx, '127.0.0.1', 0, { logger });
  t.teardown(() => admin.close());
  t.equal(admin.address, '127.0.0.1');
  return { ctx, url: (p) => `http://127.0.0.1:${admin.port}${p}`, logs };
}

async function get(url: string, method = 'GET'): Promise<{ status: number; body: string; type: string }> {
  const res = await fetch(url, { method });
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') ?? '' };
}

t.test('/stats: Envoy lines, filter, usedonly, sorting', async (t) => {
  const { url } = await setup(t);
  const all = await get(url('/stats'));
  t.equal(all.status, 200);
  t.match(all.type, 'text/plain');
  const lines = all.body.split('\n');
  t.ok(lines.includes('cluster.outbound|443||edition.cnn.com.upstream_cx_total: 2'));
  const scalars = lines.filter((l) => /: -?\d+$/.test(l)).map((l) => l.split(': ')[0]!);
  t.same(scalars, [...scalars].sort(), 'sorted');
  const filtered = await get(url('/stats?filter=' + encodeURIComponent('edition.cnn.com.upstream_cx_total')));
  t.equal(filtered.body, 'cluster.outbound|443||edition.cnn.com.upstream_cx_total: 2\n', 'partial regex match');
  const used = await get(url('/stats?usedonly'));
  t.equal(used.body, 'cluster.outbound|443||edition.cnn.com.upstream_cx_active: 1\ncluster.outbound|443||edition.cnn.com.upstream_cx_total: 2\n');
  const bad = await get(url('/stats?filter=' + encodeURIComponent('(')));
  t.equal(bad.status, 400);
  t.match(bad.body, 'Invalid regex');
  t.equal((await get(url('/stats?format=xml'))).status, 400);
});

t.test('/stats?format=json', async (t) => {
  const { url } = await setup(t);
  const r = await get(url('/stats?format=json&usedonly'));
  t.match(r.type, 'application/json');
  t.same(JSON.parse(r.body), {
    stats: [
      { name: 'cluster.outbound|443||edition.cnn.com.upstream_cx_active', value: 1 },
      { name: 'cluster.outbound|443||edition.cnn.com.upstream_cx_total', value: 2 },
    ],
  });
});

t.test('/stats/prometheus and ?format=prometheus parse back', async (t) => {
  const { url } = await setup(t);
  for (const path of ['/stats/prometheus', '/stats?format=prometheus']) {
    const r = await get(url(path));
    t.equal(r.status, 200);
    t.match(r.type, 'version=0.0.4');
    const fam = parsePrometheus(r.body).find((f) => f.name === 'envoy_cluster_upstream_cx_total')!;
    t.same(fam.samples, [{ name: 'envoy_cluster_upstream_cx_total', labels: { cluster_name: CNN }, value: 2 }], path);
  }
});

t.test('mutating endpoints are POST-only; a GET changes nothing', async (t) => {
  const { ctx, url } = await setup(t);
  for (const p of ['/reset_counters', '/healthcheck/fail', '/healthcheck/ok', '/quitquitquit', '/logging?level=debug']) {
    const r = await get(url(p));
    t.equal(r.status, 400, p);
    t.equal(r.body, POST_REQUIRED);
  }
  t.equal(ctx.cnn.upstream_cx_total.value, 2);
  t.equal(ctx.healthFailed, false);
  t.equal(ctx.quitCalls, 0);
  t.equal(ctx.logLevel, 'info');
  const reset = await get(url('/reset_counters'), 'POST');
  t.same([reset.status, reset.body], [200, 'OK\n']);
  t.equal(ctx.cnn.upstream_cx_total.value, 0);
  t.equal(ctx.cnn.upstream_cx_active.value, 1, 'gauges untouched');
});

t.test('/ready follows the server state and /healthcheck/fail|ok', async (t) => {
  const { ctx, url } = await setup(t);
  t.same(await get(url('/ready')), { status: 200, body: 'LIVE\n', type: 'text/plain; charset=UTF-8' });
  t.same((await get(url('/healthcheck/fail'), 'POST')).body, 'OK\n');
  t.same([(await get(url('/ready'))).status, (await get(url('/ready'))).body], [503, 'DRAINING\n']);
  await get(url('/healthcheck/ok'), 'POST');
  t.equal((await get(url('/ready'))).status, 200);
  ctx.serverState = 'INITIALIZING';
  t.same([(await get(url('/ready'))).status, (await get(url('/ready'))).body], [503, 'INITIALIZING\n']);
  const info = JSON.parse((await get(url('/server_info'))).body);
  t.equal(info.state, 'INITIALIZING');
  t.equal(info.version, 'sluice/test');
  t.same(info.node, { id: 'gateway~test~istio-system', cluster: 'gateway' });
  t.match(info.uptime_current_epoch, /^\d+s$/);
});

t.test('/clusters: Envoy text lines for one host, and JSON', async (t) => {
  const { url } = await setup(t);
  const r = await get(url('/clusters'));
  const c = CNN;
  const h = `${c}::151.101.1.67:443::`;
  t.equal(r.body, [
    `${c}::default_priority::max_connections::4294967295`,
    `${c}::default_priority::max_pending_requests::4294967295`,
    `${c}::default_priority::max_requests::4294967295`,
    `${c}::default_priority::max_retries::4294967295`,
    `${c}::high_priority::max_connections::1024`,
    `${c}::high_priority::max_pending_requests::1024`,
    `${c}::high_priority::max_requests::1024`,
    `${c}::high_priority::max_retries::3`,
    `${c}::added_via_api::true`,
    `${h}cx_active::1`, `${h}cx_connect_fail::0`, `${h}cx_total::2`, `${h}rq_active::0`, `${h}rq_error::0`, `${h}rq_success::2`, `${h}rq_timeout::0`, `${h}rq_total::2`,
    `${h}hostname::edition.cnn.com`, `${h}health_flags::healthy`, `${h}weight::1`, `${h}region::us-east`, `${h}zone::us-east-1a`, `${h}sub_zone::`,
    `${h}canary::false`, `${h}priority::0`, `${h}success_rate::-1`, `${h}local_origin_success_rate::-1`,
    '',
  ].join('\n'));
  const j = JSON.parse((await get(url('/clusters?format=json'))).body);
  const status = j.cluster_statuses[0];
  t.equal(status.name, CNN);
  t.equal(status.added_via_api, true);
  const host = status.host_statuses[0];
  t.same(host.address, { socket_address: { address: '151.101.1.67', port_value: 443 } });
  t.same(host.stats.find((s: { name: string }) => s.name === 'cx_total'), { name: 'cx_total', value: '2' });
  t.same(host.stats.find((s: { name: string }) => s.name === 'cx_active'), { name: 'cx_active', type: 'GAUGE', value: '1' });
  t.same(host.health_status, { eds_health_status: 'HEALTHY' });
  t.same(status.circuit_breakers.thresholds[1], { priority: 'HIGH', max_connections: 1024, max_pending_requests: 1024, max_requests: 1024, max_retries: 3 });
});

t.test('/listeners text and JSON', async (t) => {
  const { url } = await setup(t);
  t.equal((await get(url('/listeners'))).body, '0.0.0.0_80::0.0.0.0:80\nvirtualOutbound::[::]:15001\n');
  t.same(JSON.parse((await get(url('/listeners?format=json'))).body), {
    listener_statuses: [
      { name: '0.0.0.0_80', local_address: { socket_address: { address: '0.0.0.0', port_value: 80 } } },
      { name: 'virtualOutbound', local_address: { socket_address: { address: '::', port_value: 15001 } } },
    ],
  });
});

t.test('/config_dump: Envoy envelope with snapshot content, key paths only, no key material', async (t) => {
  const { ctx, url } = await setup(t);
  const r = await get(url('/config_dump'));
  t.equal(r.status, 200);
  t.notMatch(r.body, 'BEGIN PRIVATE KEY', 'pasted key material is redacted');
  t.notMatch(r.body, 'MIIEvQ');
  const dump = JSON.parse(r.body);
  t.same(dump.configs.map((c: Record<string, string>) => c['@type']), Object.values(CONFIG_DUMP_TYPES));
  const clusters = dump.configs[1].dynamic_active_clusters;
  t.equal(clusters[0].cluster.name, CNN);
  t.equal(clusters[0].cluster.tls.keyFile, '/etc/certs/key.pem', 'key file paths are printed');
  const listener = dump.configs[2].dynamic_listeners[0].active_state.listener;
  t.same(listener.chains[0].match.serverNames.exact, ['edition.cnn.com'], 'Sets become arrays');
  const routes = dump.configs[3].dynamic_route_configs[0].route_config;
  t.equal(routes.name, 'http.80');
  t.same(routes.exactDomains, ['edition.cnn.com'], 'Maps become their keys');
  t.equal(routes.virtualHosts[0].routes[0].match.uri.regex, '^\\/politics.*$', 'RegExps become their source');
  const secret = dump.configs[4].dynamic_active_secrets[0];
  t.same([secret.name, secret.secret.privateKey], ['/etc/certs/cert-chain.pem', '/etc/certs/key.pem']);
  t.equal(dump.configs[5].destination_rules[0].spec.trafficPolicy.tls.privateKey, REDACTED);
  const only = JSON.parse((await get(url('/config_dump?resource=dynamic_active_clusters'))).body);
  t.equal(only.configs.length, 1);
  t.equal(only.configs[0].cluster.name, CNN);
  t.equal((await get(url('/config_dump?resource=nope'))).status, 404);
  ctx.snap = null;
  const empty = JSON.parse((await get(url('/config_dump'))).body);
  t.equal(empty.configs.length, 1, 'before the first snapshot: bootstrap only');
});

t.test('/logging sets the level through the context', async (t) => {
  const { ctx, url } = await setup(t);
  const r = await get(url('/logging?level=warning'), 'POST');
  t.equal(r.status, 200);
  t.equal(ctx.logLevel, 'warn', "Envoy's name mapped to pino's");
  t.equal((await get(url('/logging?level=loud'), 'POST')).status, 400);
  t.equal(ctx.logLevel, 'warn');
  t.match((await get(url('/logging'), 'POST')).body, 'usage: POST /logging?level=');
});

t.test('/quitquitquit answers OK, then calls quit()', async (t) => {
  const { ctx, url } = await setup(t);
  const quit = new Promise<void>((resolve) => (ctx.onQuit = resolve));
  const r = await get(url('/quitquitquit'), 'POST');
  t.same([r.status, r.body], [200, 'OK\n']);
  await quit;
  t.equal(ctx.quitCalls, 1);
});

t.test('a failing handler gives 500 with the message, is logged, and the admin keeps serving', async (t) => {
  const { ctx, url, logs } = await setup(t);
  ctx.clustersFail = true;
  const r = await get(url('/clusters'));
  t.equal(r.status, 500);
  t.match(r.body, 'cluster manager exploded');
  t.ok(logs.some((l) => l['msg'] === 'admin handler failed' && l['path'] === '/clusters'));
  t.equal((await get(url('/ready'))).status, 200);
});

t.test('unknown paths 404; / lists the endpoints', async (t) => {
  const { url } = await setup(t);
  const r = await get(url('/nope'));
  t.equal(r.status, 404);
  const help = await get(url('/'));
  for (const p of ['/stats', '/stats/prometheus', '/clusters', '/config_dump', '/ready', '/server_info', '/listeners', '/reset_counters', '/quitquitquit', '/logging', '/healthcheck/fail']) {
    t.match(help.body, `  ${p}: `);
  }
  t.match(help.body, '/reset_counters: reset all counters to zero (POST)');
});

t.test('15090 listener serves only /stats/prometheus; 15021 serves /healthz/ready', async (t) => {
  const ctx = new FakeContext();
  ctx.cnn.upstream_cx_total.inc();
  const logger = pino({ level: 'silent' });
  const prom = await startPrometheusListener(ctx.stats, '127.0.0.1', 0, { logger });
  t.teardown(() => prom.close());
  const health = await startHealthListener(ctx, '127.0.0.1', 0, { logger });
  t.teardown(() => health.close());
  const p = await get(`http://127.0.0.1:${prom.port}/stats/prometheus`);
  t.equal(p.status, 200);
  t.ok(p.body.split('\n').includes(`envoy_cluster_upstream_cx_total{cluster_name="${CNN}"} 1`));
  t.equal((await get(`http://127.0.0.1:${prom.port}/stats`)).status, 404, 'the admin is not exposed on 15090');
  t.equal((await get(`http://127.0.0.1:${prom.port}/reset_counters`, 'POST')).status, 404);
  t.equal((await get(`http://127.0.0.1:${health.port}/healthz/ready`)).status, 200);
  ctx.setHealthCheckFailed(true);
  const h = await get(`http://127.0.0.1:${health.port}/healthz/ready`);
  t.same([h.status, h.body], [503, 'DRAINING\n']);
  t.equal((await get(`http://127.0.0.1:${health.port}/stats`)).status, 404);
});

t.test('a busy port is a rejected promise, not a crash', async (t) => {
  const ctx = new FakeContext();
  const logger = pino({ level: 'silent' });
  const first = await startAdmin(ctx, '127.0.0.1', 0, { logger });
  t.teardown(() => first.close());
  await t.rejects(startAdmin(ctx, '127.0.0.1', first.port, { logger }), { code: 'EADDRINUSE' });
});
