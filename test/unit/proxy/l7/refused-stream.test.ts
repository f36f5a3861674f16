// retryOn `refused-stream` against a real HTTP/2 upstream (a node:http2 server declared as an
// HTTP2 port, so sluice speaks HTTP/2 to it) that resets streams with REFUSED_STREAM: a refused
// stream is retried when retryOn names refused-stream, and answered 503 when it does not. The
// client speaks HTTP/1.1 to the gateway.

import http2 from 'node:http2';
import type net from 'node:net';
import t from 'tap';
import { freePort, oneUpstreamConfig, startTestRuntime } from '../../../helpers/gateway';
import { send } from '../../../helpers/recording-upstream';

// up.example is an HTTP2 port, so sluice speaks HTTP/2 to the upstream; /retried retries refused
// streams, everything else retries only retriable-4xx.
const ROUTES = `  - match: [{ uri: { prefix: /retried } }]
    retries: { attempts: 2, retryOn: refused-stream }
    route: [{ destination: { host: up.example, port: { number: 80 } } }]
  - retries: { attempts: 2, retryOn: retriable-4xx }
    route: [{ destination: { host: up.example, port: { number: 80 } } }]`;

t.test('REFUSED_STREAM is retried under refused-stream, not under another class', async (t) => {
  const refusedPaths = new Map<string, number>();
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    const p = String(headers[':path']);
    const n = refusedPaths.get(p) ?? 0;
    refusedPaths.set(p, n + 1);
    // The first two tries of each path are refused (one would be retried transparently, as a
    // stream the upstream never processed); the third is answered.
    if (n < 2) stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    else {
      stream.respond({ ':status': 200 });
      stream.end('ok');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.close(() => r()); }));
  const upPort = (server.address() as net.AddressInfo).port;
  const gwPort = await freePort();
  await startTestRuntime(t, oneUpstreamConfig({ gwPort, upstreamPort: upPort, protocol: 'HTTP2', http: ROUTES }));

  const retried = await send(gwPort, { path: '/retried' });
  t.equal(retried.status, 200, 'refused twice, answered on the third try');
  t.equal(refusedPaths.get('/retried'), 3);

  const notRetried = await send(gwPort, { path: '/other' });
  t.equal(notRetried.status, 503, 'retriable-4xx does not retry a refused stream (past the one transparent retry)');
  t.equal(refusedPaths.get('/other'), 2);
});
