// Forwarding behaviours of the fast path against a real upstream: HEAD (Content-Length kept, no body),
// Expect: 100-continue (the client gets 100 before sending), upstream 1xx not forwarded, chunked and
// close-delimited responses re-framed for the client, a mid-body upstream failure resets the
// downstream (never a clean, truncated end), and the route timeout's 504 UT.

import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { freePort, startTestRuntime, oneUpstreamConfig } from '../../../helpers/gateway';

function config(gwPort: number, upPort: number): string {
  return oneUpstreamConfig({
    gwPort,
    upstreamPort: upPort,
    http: `  - match: [{ uri: { prefix: /slow } }]
    timeout: 0.2s
    route: [{ destination: { host: up.example, port: { number: 80 } } }]
  - route: [{ destination: { host: up.example, port: { number: 80 } } }]`,
  });
}

/** A raw upstream: canned bytes per path, so the test controls framing exactly. */
async function rawUpstream(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const server = net.createServer((s) => {
    let buf = '';
    s.setEncoding('latin1');
    s.on('error', () => undefined);
    s.on('data', (c: string) => {
      buf += c;
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const line = buf.slice(0, buf.indexOf('\r\n'));
      buf = '';
      const [method, path] = line.split(' ');
      if (path === '/early') s.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      else if (path === '/chunked') s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n');
      else if (path === '/eof') s.end('HTTP/1.1 200 OK\r\n\r\nuntil-close');
      else if (path === '/broken') {
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-part');
        setTimeout(() => s.destroy(), 50);
      } else if (path === '/slow') setTimeout(() => s.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate'), 2000).unref();
      else if (method === 'HEAD') s.write('HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n');
      else s.write('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.close(() => r()); }));
  return (server.address() as net.AddressInfo).port;
}

function request(port: number, method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; aborted: boolean; gotContinue: boolean }> {
  return new Promise((resolve, reject) => {
    let gotContinue = false;
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: { host: 'up.example', ...headers }, agent: false }, (res) => {
      let text = '';
      let aborted = false;
      res.setEncoding('latin1');
      res.on('data', (c: string) => (text += c));
      res.on('aborted', () => (aborted = true));
      res.on('error', () => (aborted = true));
      res.on('close', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, aborted: aborted || !res.complete, gotContinue }));
    });
    req.on('error', reject);
    if (headers.expect === '100-continue') {
      req.on('continue', () => {
        gotContinue = true;
        req.end(body);
      });
    } else req.end(body);
  });
}

t.test('HEAD, 1xx, re-framing, resets and timeouts', async (t) => {
  const upPort = await rawUpstream(t);
  const gwPort = await freePort();
  const gw = await startTestRuntime(t, config(gwPort, upPort));

  const head = await request(gwPort, 'HEAD', '/');
  t.equal(head.status, 200);
  t.equal(head.headers['content-length'], '1234', 'HEAD: the upstream Content-Length is forwarded');
  t.equal(head.body, '', 'HEAD: no body');

  const early = await request(gwPort, 'GET', '/early');
  t.equal(early.status, 200, '103 skipped, the final 200 forwarded');
  t.equal(early.body, 'ok');

  const chunked = await request(gwPort, 'GET', '/chunked');
  t.equal(chunked.body, 'abcde', 'chunked response decoded and re-framed');
  t.equal(chunked.headers['transfer-encoding'], 'chunked');

  const eof = await request(gwPort, 'GET', '/eof');
  t.equal(eof.body, 'until-close', 'close-delimited upstream body delivered whole');
  t.equal(eof.aborted, false, 'and ended cleanly (chunked to the HTTP/1.1 client)');

  const broken = await request(gwPort, 'GET', '/broken');
  t.equal(broken.status, 200);
  t.equal(broken.aborted, true, 'mid-body upstream failure: the client sees a reset, not a clean end');
  t.notMatch(broken.body, /upstream/, 'no error text appended');

  const slow = await request(gwPort, 'GET', '/slow');
  t.equal(slow.status, 504, 'route timeout: 504');
  t.equal(slow.body, 'upstream request timeout');

  const lines = await gw.lines();
  t.ok(lines.some((l) => /"GET \/broken HTTP\/1\.1" 200 UC /.test(l)), 'mid-body reset logged UC');
  t.ok(lines.some((l) => /"GET \/slow HTTP\/1\.1" 504 UT /.test(l)), 'timeout logged UT');
});

t.test('Expect: 100-continue: the client hears 100 Continue, then its body is forwarded', async (t) => {
  let seen = '';
  const up = http.createServer((req, res) => {
    req.setEncoding('latin1');
    req.on('data', (c: string) => (seen += c));
    req.on('end', () => res.end('got ' + seen.length));
  });
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { up.close(() => r()); up.closeAllConnections(); }));
  const gwPort = await freePort();
  await startTestRuntime(t, config(gwPort, (up.address() as net.AddressInfo).port));
  const body = Buffer.alloc(5000, 'b');
  const r = await request(gwPort, 'POST', '/upload', body, { expect: '100-continue', 'content-length': String(body.length) });
  t.equal(r.gotContinue, true, '100 Continue reached the client');
  t.equal(r.body, 'got 5000', 'the body was forwarded whole');
  t.equal(seen, body.toString('latin1'));
});
