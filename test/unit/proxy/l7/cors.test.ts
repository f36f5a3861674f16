// VirtualService `corsPolicy` through a real gateway on loopback: a preflight from an allowed
// origin is answered by the proxy (the upstream never sees it) with Envoy's access-control-*
// headers; a preflight from another origin is forwarded (unmatchedPreflights FORWARD, the default)
// or answered without CORS headers (IGNORE); the actual request's response carries
// access-control-allow-origin, -allow-credentials and -expose-headers only for allowed origins.

import t from 'tap';
import { freePort, oneUpstreamConfig, startTestRuntime } from '../../../helpers/gateway';
import { recordingUpstream, send } from '../../../helpers/recording-upstream';

const cors = (prefix: string, extra = ''): string => `  - match: [{ uri: { prefix: ${prefix} } }]
    corsPolicy:
      allowOrigins: [{ exact: "https://app.example" }, { regex: "https://.*\\\\.trusted\\\\.example" }]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom, content-type]
      exposeHeaders: [x-served-by]
      maxAge: 24h
      allowCredentials: true${extra}
    route: [{ destination: { host: up.example, port: { number: 80 } } }]`;

const preflight = (origin: string): Record<string, string> => ({ origin, 'access-control-request-method': 'POST' });

t.test('preflight answered locally, headers on the actual response', async (t) => {
  const up = await recordingUpstream(t, () => ({ headers: { 'x-served-by': 'up' } }));
  const gwPort = await freePort();
  const http = [cors('/ignore', '\n      unmatchedPreflights: IGNORE'), cors('/')].join('\n');
  const gw = await startTestRuntime(t, oneUpstreamConfig({ gwPort, upstreamPort: up.port, http }));

  const pre = await send(gwPort, { method: 'OPTIONS', path: '/api', headers: preflight('https://app.example') });
  t.equal(pre.status, 200);
  t.equal(pre.headers['access-control-allow-origin'], 'https://app.example');
  t.equal(pre.headers['access-control-allow-methods'], 'GET,POST');
  t.equal(pre.headers['access-control-allow-headers'], 'x-custom,content-type');
  t.equal(pre.headers['access-control-max-age'], '86400');
  t.equal(pre.headers['access-control-allow-credentials'], 'true');
  t.equal(up.seen.length, 0, 'the preflight never reached the upstream');

  const regexOrigin = await send(gwPort, { method: 'OPTIONS', path: '/api', headers: preflight('https://a.trusted.example') });
  t.equal(regexOrigin.headers['access-control-allow-origin'], 'https://a.trusted.example', 'a regex origin match');

  const other = await send(gwPort, { method: 'OPTIONS', path: '/api', headers: preflight('https://evil.example') });
  t.equal(other.headers['access-control-allow-origin'], undefined, 'no CORS headers for another origin');
  t.same(up.seen.map((r) => r.method + ' ' + r.url), ['OPTIONS /api'], 'FORWARD: it went upstream');

  const ignored = await send(gwPort, { method: 'OPTIONS', path: '/ignore', headers: preflight('https://evil.example') });
  t.equal(ignored.status, 200, 'IGNORE: answered by the proxy');
  t.equal(ignored.headers['access-control-allow-origin'], undefined);
  t.equal(up.seen.length, 1, 'and not forwarded');

  const actual = await send(gwPort, { path: '/api', headers: { origin: 'https://app.example' } });
  t.equal(actual.status, 200);
  t.equal(actual.headers['access-control-allow-origin'], 'https://app.example');
  t.equal(actual.headers['access-control-allow-credentials'], 'true');
  t.equal(actual.headers['access-control-expose-headers'], 'x-served-by');
  t.equal(actual.headers['access-control-allow-methods'], undefined, 'preflight-only headers are not on actual responses');

  const foreign = await send(gwPort, { path: '/api', headers: { origin: 'https://evil.example' } });
  t.equal(foreign.status, 200, 'a request from another origin is still forwarded');
  t.equal(foreign.headers['access-control-allow-origin'], undefined, 'without CORS headers');

  const plain = await send(gwPort, { path: '/api' });
  t.equal(plain.headers['access-control-allow-origin'], undefined, 'no Origin: not a CORS request');

  const lines = await gw.lines();
  t.match(lines[0], /"OPTIONS \/api HTTP\/1\.1" 200 - cors_response /, 'the local preflight reply is logged');
});
