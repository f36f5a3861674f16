// VirtualService `retries` through a real gateway on loopback, one route per retryOn class: 5xx,
// gateway-error, retriable-4xx, bare status codes (retriable-status-codes), reset,
// connect-failure (to another host: previous hosts are avoided), envoy-ratelimited, a gRPC status
// (unavailable), the retry limit (the last answer passes through, flagged URX), perTryTimeout
// (retried, and the last one answered 504 UT upstream_per_try_timeout), a small POST body sent again
// by the retry and a large one not retried. Every try carries
// x-envoy-attempt-count; the cluster's upstream_rq_retry* stats count them.

import net from 'node:net';
import t from 'tap';
import { freePort, oneUpstreamConfig, startTestRuntime } from '../../../helpers/gateway';
import { recordingUpstream, send, type Reply, type SeenRequest } from '../../../helpers/recording-upstream';

const C = 'cluster.outbound|80||up.example.';

const route = (prefix: string, retries: string): string => `  - match: [{ uri: { prefix: ${prefix} } }]
    retries: ${retries}
    route: [{ destination: { host: up.example, port: { number: 80 } } }]`;

/** Per path: the replies of the first tries, then 200. */
const SCRIPT: Record<string, Reply[]> = {
  '/5xx': [{ status: 503 }, { status: 500 }],
  '/gw': [{ status: 502 }, { status: 504 }],
  '/gw500': [{ status: 500 }],
  '/4xx': [{ status: 409 }],
  '/4xx404': [{ status: 404 }],
  '/codes': [{ status: 418 }],
  '/reset': [{ reset: true }],
  '/reset-not': [{ reset: true }],
  '/ratelimited': [{ status: 429, headers: { 'x-envoy-ratelimited': 'true' } }],
  '/grpc': [{ status: 200, headers: { 'grpc-status': '14', 'content-type': 'application/grpc' } }],
  '/limit': [{ status: 503 }, { status: 503 }, { status: 503 }, { status: 503 }],
  '/pertry': [{ delayMs: 1500 }],
  '/pertry-all': [{ delayMs: 1500 }, { delayMs: 1500 }, { delayMs: 1500 }],
  '/post': [{ status: 503 }],
  '/post-big': [{ status: 503 }],
};

function scripted(): (req: SeenRequest, n: number) => Reply {
  const count = new Map<string, number>();
  return (req) => {
    const k = req.url;
    const i = count.get(k) ?? 0;
    count.set(k, i + 1);
    const r = SCRIPT[k]?.[i] ?? { status: 200, body: 'ok' };
    // One connection per try: a reset then always hits a fresh connection, never one the pool
    // would transparently replace (a reused keep-alive connection that closed is not a failure).
    return { ...r, headers: { connection: 'close', ...r.headers } };
  };
}

const tries = (seen: readonly SeenRequest[], p: string): string[] => seen.filter((r) => r.url === p).map((r) => String(r.headers['x-envoy-attempt-count']));

t.test('each retryOn class retries what it names and nothing else', async (t) => {
  const up = await recordingUpstream(t, scripted());
  const gwPort = await freePort();
  const http = [
    route('/5xx', '{ attempts: 3, retryOn: 5xx }'),
    route('/gw500', '{ attempts: 3, retryOn: gateway-error }'),
    route('/gw', '{ attempts: 3, retryOn: gateway-error }'),
    route('/4xx404', '{ attempts: 3, retryOn: retriable-4xx }'),
    route('/4xx', '{ attempts: 3, retryOn: retriable-4xx }'),
    route('/codes', '{ attempts: 2, retryOn: "418" }'),
    route('/reset-not', '{ attempts: 2, retryOn: retriable-4xx }'),
    route('/reset', '{ attempts: 2, retryOn: reset }'),
    route('/ratelimited', '{ attempts: 2, retryOn: envoy-ratelimited }'),
    route('/grpc', '{ attempts: 2, retryOn: unavailable }'),
    route('/limit', '{ attempts: 2, retryOn: 5xx }'),
    route('/pertry-all', '{ attempts: 2, perTryTimeout: 0.2s, retryOn: 5xx }'),
    route('/pertry', '{ attempts: 2, perTryTimeout: 0.2s, retryOn: 5xx }'),
    route('/post-big', '{ attempts: 2, retryOn: 5xx }'),
    route('/post', '{ attempts: 2, retryOn: 5xx }'),
  ].join('\n');
  const gw = await startTestRuntime(t, oneUpstreamConfig({ gwPort, upstreamPort: up.port, http }));

  const r5 = await send(gwPort, { path: '/5xx' });
  t.equal(r5.status, 200, '5xx: 503 and 500 retried');
  t.same(tries(up.seen, '/5xx'), ['1', '2', '3'], 'x-envoy-attempt-count on every try');

  t.equal((await send(gwPort, { path: '/gw' })).status, 200, 'gateway-error: 502 and 504 retried');
  t.same(tries(up.seen, '/gw'), ['1', '2', '3']);
  t.equal((await send(gwPort, { path: '/gw500' })).status, 500, 'gateway-error: a 500 is not retried');
  t.same(tries(up.seen, '/gw500'), ['1']);

  t.equal((await send(gwPort, { path: '/4xx' })).status, 200, 'retriable-4xx: 409 retried');
  t.equal((await send(gwPort, { path: '/4xx404' })).status, 404, 'retriable-4xx: 404 is not');
  t.same(tries(up.seen, '/4xx404'), ['1']);

  t.equal((await send(gwPort, { path: '/codes' })).status, 200, 'a bare code in retryOn: 418 retried');
  t.same(tries(up.seen, '/codes'), ['1', '2']);

  t.equal((await send(gwPort, { path: '/reset' })).status, 200, 'reset: a closed connection retried');
  t.same(tries(up.seen, '/reset'), ['1', '2']);
  const notReset = await send(gwPort, { path: '/reset-not' });
  t.equal(notReset.status, 503, 'a reset is not retriable-4xx');
  t.same(tries(up.seen, '/reset-not'), ['1']);

  t.equal((await send(gwPort, { path: '/ratelimited' })).status, 200, 'envoy-ratelimited retried');
  t.equal((await send(gwPort, { path: '/grpc' })).headers['grpc-status'], undefined, 'grpc-status 14 (unavailable) retried');
  t.same(tries(up.seen, '/grpc'), ['1', '2']);

  const limit = await send(gwPort, { path: '/limit' });
  t.equal(limit.status, 503, 'the last try\'s answer passes through');
  t.same(tries(up.seen, '/limit'), ['1', '2', '3'], '1 + attempts tries');

  t.equal((await send(gwPort, { path: '/pertry' })).status, 200, 'perTryTimeout: a slow try is abandoned and retried');
  t.same(tries(up.seen, '/pertry'), ['1', '2']);
  const allSlow = await send(gwPort, { path: '/pertry-all' });
  t.equal(allSlow.status, 504);
  t.equal(allSlow.body, 'upstream request timeout');

  const post = await send(gwPort, { path: '/post', method: 'POST', body: 'payload' });
  t.equal(post.status, 200, 'a small body is kept and sent again by the retry');
  t.same(up.seen.filter((r) => r.url === '/post').map((r) => r.body), ['payload', 'payload'], 'both tries carried the whole body');
  const big = await send(gwPort, { path: '/post-big', method: 'POST', body: 'b'.repeat(100 * 1024) });
  t.equal(big.status, 503, 'a body over 64 KiB is not kept, so once it went upstream there is no retry');
  t.same(tries(up.seen, '/post-big'), ['1']);

  const stat = (n: string): number => gw.stat(C + n) ?? 0;
  // retries: 5xx 2, gw 2, 4xx 1, codes 1, reset 1, ratelimited 1, grpc 1, limit 2, pertry 1, pertry-all 2, post 1
  t.equal(stat('upstream_rq_retry'), 15, 'upstream_rq_retry');
  t.equal(stat('upstream_rq_retry_success'), 9, 'upstream_rq_retry_success: retried requests that ended well');
  t.equal(stat('upstream_rq_retry_limit_exceeded'), 2, 'limit and pertry-all');
  t.equal(stat('upstream_rq_retry_backoff_exponential'), 15, 'each retry waited a back-off');
  t.equal(stat('upstream_rq_per_try_timeout'), 4);

  const lines = await gw.lines();
  t.match(lines.find((l) => l.includes('/limit')), /"GET \/limit HTTP\/1\.1" 503 URX via_upstream /, 'URX on the passed-through answer');
  t.match(lines.find((l) => l.includes('/pertry-all')), /"GET \/pertry-all HTTP\/1\.1" 504 UT,URX upstream_per_try_timeout /);
  t.match(lines.find((l) => l.includes('/5xx')), /"GET \/5xx HTTP\/1\.1" 200 - via_upstream /, 'a retried success carries no flag');
});

t.test('connect-failure: the retry goes to another host (previous hosts are avoided)', async (t) => {
  const up = await recordingUpstream(t);
  // A port nothing listens on: bound, then closed.
  const dead = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const gwPort = await freePort();
  const config = oneUpstreamConfig({ gwPort, upstreamPort: up.port, http: route('/', '{ attempts: 1, retryOn: connect-failure }') }).replace(
    `endpoints: [{ address: 127.0.0.1, ports: { http: ${up.port} } }]`,
    `endpoints: [{ address: 127.0.0.1, ports: { http: ${dead} } }, { address: 127.0.0.1, ports: { http: ${up.port} } }]`,
  );
  const gw = await startTestRuntime(t, config);
  const statuses: number[] = [];
  for (let i = 0; i < 6; i++) statuses.push((await send(gwPort, { path: '/' + i })).status);
  t.same(statuses, [200, 200, 200, 200, 200, 200], 'one retry always reaches the live host');
  t.ok((gw.stat(C + 'upstream_rq_retry') ?? 0) >= 1, 'some requests first met the dead host and were retried');
  t.equal(up.seen.length, 6);
});
