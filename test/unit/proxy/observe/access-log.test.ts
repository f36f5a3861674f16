import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AccessLogRecord } from '../../../../proxy/observe/access-log-record';
import { createAccessLog, formatEnvoy, formatIstio, formatJson } from '../../../../proxy/observe/access-log';
import { StatsStore } from '../../../../proxy/observe/stats';

/** The seed's request: `curl http://edition.cnn.com/politics` through the egress gateway. */
function seedHttp(): AccessLogRecord {
  const r = new AccessLogRecord(Date.parse('2018-06-14T11:46:23.596Z'), 0);
  r.method = 'GET';
  r.path = '/politics';
  r.protocol = 'HTTP/1.1';
  r.responseCode = 301;
  r.bytesReceived = 0;
  r.bytesSent = 0;
  r.durationMs = 3.7; // whole ms are printed, truncated as Envoy does
  r.upstreamServiceTimeMs = 1;
  r.xForwardedFor = '172.30.146.87';
  r.userAgent = 'curl/7.35.0';
  r.requestId = 'ab7b1c2d-0000-4000-8000-000000000001';
  r.authority = 'edition.cnn.com';
  r.upstreamHost = '151.101.193.67:80';
  return r;
}

function tcpRecord(): AccessLogRecord {
  const r = new AccessLogRecord(Date.parse('2018-06-14T11:47:00.001Z'), 0);
  r.bytesReceived = 627;
  r.bytesSent = 1879689;
  r.durationMs = 44;
  r.upstreamHost = '151.101.129.67:443';
  r.upstreamCluster = 'outbound|443||edition.cnn.com';
  r.upstreamLocalAddress = '172.30.109.80:41122';
  r.downstreamLocalAddress = '172.30.109.80:443';
  r.downstreamRemoteAddress = '172.30.109.112:59970';
  r.requestedServerName = 'edition.cnn.com';
  return r;
}

t.test('envoy format reproduces the seed line', async (t) => {
  t.equal(
    formatEnvoy(seedHttp()),
    '[2018-06-14T11:46:23.596Z] "GET /politics HTTP/1.1" 301 - 0 0 3 1 "172.30.146.87" "curl/7.35.0" "ab7b1c2d-0000-4000-8000-000000000001" "edition.cnn.com" "151.101.193.67:80"\n',
  );
});

t.test('istio format: HTTP line in Istio >= 1.9 field order', async (t) => {
  const r = new AccessLogRecord(Date.parse('2020-11-25T21:26:18.409Z'), 0);
  Object.assign(r, {
    method: 'GET', path: '/status/418', protocol: 'HTTP/1.1', responseCode: 418, responseCodeDetails: 'via_upstream',
    bytesReceived: 0, bytesSent: 135, durationMs: 4, upstreamServiceTimeMs: 4, userAgent: 'curl/7.73.0-DEV',
    requestId: '84961386-6d84-929d-98bd-c5aee93b5c88', authority: 'httpbin:8000', upstreamHost: '10.44.1.27:80',
    upstreamCluster: 'outbound|8000||httpbin.foo.svc.cluster.local', upstreamLocalAddress: '10.44.1.23:37652',
    downstreamLocalAddress: '10.0.45.184:8000', downstreamRemoteAddress: '10.44.1.23:46520', routeName: 'default',
  });
  t.equal(
    formatIstio(r),
    '[2020-11-25T21:26:18.409Z] "GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 4 4 "-" "curl/7.73.0-DEV" "84961386-6d84-929d-98bd-c5aee93b5c88" "httpbin:8000" "10.44.1.27:80" outbound|8000||httpbin.foo.svc.cluster.local 10.44.1.23:37652 10.0.45.184:8000 10.44.1.23:46520 - default\n',
  );
});

t.test('istio format: a TCP connection line', async (t) => {
  t.equal(
    formatIstio(tcpRecord()),
    '[2018-06-14T11:47:00.001Z] "- - -" 0 - - - "-" 627 1879689 44 - "-" "-" "-" "-" "151.101.129.67:443" outbound|443||edition.cnn.com 172.30.109.80:41122 172.30.109.80:443 172.30.109.112:59970 edition.cnn.com -\n',
  );
  t.equal(formatEnvoy(tcpRecord()), '[2018-06-14T11:47:00.001Z] "- - -" 0 - 627 1879689 44 - "-" "-" "-" "-" "151.101.129.67:443"\n');
});

t.test('istio format: REGISTRY_ONLY BlackHoleCluster line with UH', async (t) => {
  const r = new AccessLogRecord(Date.parse('2024-01-02T03:04:05.006Z'), 0);
  r.addFlag('UH');
  r.upstreamCluster = 'BlackHoleCluster';
  r.downstreamLocalAddress = '104.20.23.154:443';
  r.downstreamRemoteAddress = '10.244.0.27:35284';
  t.equal(
    formatIstio(r),
    '[2024-01-02T03:04:05.006Z] "- - -" 0 UH - - "-" 0 0 0 - "-" "-" "-" "-" "-" BlackHoleCluster - 104.20.23.154:443 10.244.0.27:35284 - -\n',
  );
});

t.test('flags are joined with commas and the transport failure reason is quoted', async (t) => {
  const r = seedHttp();
  r.responseCode = 503;
  r.upstreamServiceTimeMs = null;
  r.addFlag('UF');
  r.addFlag('URX');
  r.responseCodeDetails = 'upstream_reset_before_response_started{connection_failure}';
  r.upstreamTransportFailureReason = 'delayed connect error: 111';
  r.upstreamCluster = 'outbound|80||edition.cnn.com';
  r.routeName = 'default';
  t.equal(
    formatIstio(r),
    '[2018-06-14T11:46:23.596Z] "GET /politics HTTP/1.1" 503 UF,URX upstream_reset_before_response_started{connection_failure} - "delayed connect error: 111" 0 0 3 - "172.30.146.87" "curl/7.35.0" "ab7b1c2d-0000-4000-8000-000000000001" "edition.cnn.com" "151.101.193.67:80" outbound|80||edition.cnn.com - - - - default\n',
  );
  t.match(formatEnvoy(r), '" 503 UF,URX 0 0 3 - "');
});

t.test('json format: Istio keys in order, typed values, null for unset', async (t) => {
  const doc = JSON.parse(formatJson(seedHttp()));
  t.same(Object.keys(doc), [
    'start_time', 'route_name', 'method', 'path', 'protocol', 'response_code', 'response_flags', 'response_code_details',
    'connection_termination_details', 'bytes_received', 'bytes_sent', 'duration', 'upstream_service_time', 'x_forwarded_for',
    'user_agent', 'request_id', 'authority', 'upstream_host', 'upstream_cluster', 'upstream_local_address',
    'downstream_local_address', 'downstream_remote_address', 'requested_server_name', 'upstream_transport_failure_reason',
    'downstream_peer_uri_san', 'direction',
  ]);
  t.equal(doc.direction, 'outbound', 'an outbound| cluster');
  const inbound = seedHttp();
  inbound.upstreamCluster = 'inbound|8000||';
  inbound.downstreamPeerUriSan = 'spiffe://cluster.local/ns/foo/sa/sleep';
  const inDoc = JSON.parse(formatJson(inbound));
  t.same([inDoc.direction, inDoc.downstream_peer_uri_san], ['inbound', 'spiffe://cluster.local/ns/foo/sa/sleep'], 'the inbound side and the verified client');
  t.equal(doc.start_time, '2018-06-14T11:46:23.596Z');
  t.equal(doc.response_code, 301);
  t.equal(doc.duration, 3);
  t.equal(doc.upstream_service_time, '1', 'a header value: string');
  t.equal(doc.response_flags, '-');
  t.equal(doc.route_name, null);
  t.equal(doc.authority, 'edition.cnn.com');
  const tcp = JSON.parse(formatJson(tcpRecord()));
  t.equal(tcp.method, null);
  t.equal(tcp.upstream_service_time, null);
  t.equal(tcp.bytes_sent, 1879689);
  const weird = seedHttp();
  weird.userAgent = 'a "quoted" \\ agent';
  t.equal(JSON.parse(formatJson(weird)).user_agent, 'a "quoted" \\ agent', 'strings are JSON-escaped');
  t.equal(formatJson(seedHttp()).split('\n').length, 2, 'one line');
});

t.test('a file target receives N lines for N records, counted as written', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-al-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'sub', 'access.log');
  const stats = new StatsStore();
  const log = createAccessLog({ target: file, format: 'envoy' }, stats);
  const N = 500;
  for (let i = 0; i < N; i++) {
    const r = seedHttp();
    r.requestId = 'req-' + i;
    log.log(r);
  }
  await log.flush();
  const afterFlush = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  t.equal(afterFlush.length, N, 'flush() resolves only once every line is in the file');
  await log.close();
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  t.equal(lines.length, N);
  t.equal(lines[0], formatEnvoy(Object.assign(seedHttp(), { requestId: 'req-0' })).trimEnd());
  t.match(lines[N - 1], `"req-${N - 1}"`, 'order kept');
  t.equal(stats.counter('access_log.written').value, N);
  t.equal(stats.counter('access_log.dropped').value, 0);
  log.log(seedHttp());
  t.equal(stats.counter('access_log.written').value, N, 'records after close are ignored');
});

t.test('a slow sink drops lines and counts them instead of buffering without bound', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-al-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'access.log');
  const stats = new StatsStore();
  const lineBytes = Buffer.byteLength(formatIstio(seedHttp()));
  // Room for 3 lines. Bytes stay counted until their fs.write completes, which cannot happen
  // during this synchronous loop, so the 4th line on is dropped.
  const log = createAccessLog({ target: file, format: 'istio', maxBufferBytes: lineBytes * 3 }, stats);
  const N = 50;
  for (let i = 0; i < N; i++) log.log(seedHttp());
  const written = stats.counter('access_log.written').value;
  const dropped = stats.counter('access_log.dropped').value;
  t.equal(written, 3);
  t.equal(dropped, N - 3);
  await log.close();
  t.equal(readFileSync(file, 'utf8').split('\n').filter(Boolean).length, written, 'exactly the accepted lines reach the file');
});

t.test('flush() writes lines held back by minLength', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-al-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'access.log');
  const log = createAccessLog({ target: file, format: 'envoy', minLength: 4096 }, new StatsStore());
  log.log(seedHttp());
  log.log(seedHttp());
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(readFileSync(file, 'utf8'), '', 'below minLength nothing is written yet');
  await log.flush();
  t.equal(readFileSync(file, 'utf8').split('\n').filter(Boolean).length, 2);
  await log.close();
});

t.test('an unwritable path fails at creation with a stable code', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-al-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.throws(() => createAccessLog({ target: dir, format: 'istio' }, new StatsStore()), { code: 'PRX_ERR_ACCESS_LOG_OPEN', message: new RegExp('cannot open access log "' + dir) });
});

t.test("'off' is a no-op sink", async (t) => {
  const stats = new StatsStore();
  const log = createAccessLog({ target: 'off', format: 'istio' }, stats);
  log.log(seedHttp());
  await log.flush();
  await log.close();
  t.equal(stats.get('access_log.written'), undefined, 'no stats created for a disabled log');
});

t.test('an unknown format is refused', async (t) => {
  t.throws(() => createAccessLog({ target: 'off', format: 'xml' as 'json' }, new StatsStore()), /unknown access log format "xml"/);
});

t.test('stdout target writes lines to fd 1 of a real process', async (t) => {
  const mod = path.resolve(__dirname, '../../../../proxy/observe/access-log.js');
  const rec = path.resolve(__dirname, '../../../../proxy/observe/access-log-record.js');
  const st = path.resolve(__dirname, '../../../../proxy/observe/stats.js');
  const script = `
    const { createAccessLog } = require(${JSON.stringify(mod)});
    const { AccessLogRecord } = require(${JSON.stringify(rec)});
    const { StatsStore } = require(${JSON.stringify(st)});
    const log = createAccessLog({ target: 'stdout', format: 'json' }, new StatsStore());
    for (let i = 0; i < 3; i++) { const r = new AccessLogRecord(0, 0); r.requestId = 'r' + i; log.log(r); }
    log.close().then(() => process.stderr.write('closed'));
  `;
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  t.same(lines.map((l) => l.request_id), ['r0', 'r1', 'r2']);
  t.equal(lines[0].start_time, '1970-01-01T00:00:00.000Z');
});
