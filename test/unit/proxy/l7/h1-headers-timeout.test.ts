// request_headers_timeout on the proxy's coarse clock (timer-wheel.ts, advanced by hand here): a head
// begun and not completed within the limit gets 408 and the connection closes, although the client
// keeps sending a header line now and then (slowloris: activity that keeps the idle timer fresh);
// the count starts at the head's first byte, each request's head has its own, a complete head stops
// it, and a connection that sends nothing is left to the idle timeout.

import net from 'node:net';
import t from 'tap';
import { H1Connection, type H1Hooks, type H1Stream } from '../../../../proxy/l7/h1-server';
import { TICK_MS, clock } from '../../../../proxy/timer-wheel';

const HEADERS_MS = 2000;
const HEADERS_TICKS = HEADERS_MS / TICK_MS;
clock.manual();
t.teardown(() => clock.automatic());

interface Pair {
  client: net.Socket;
  server: net.Socket;
  received: () => string;
  timeouts: () => number;
}

async function pair(t: { teardown(fn: () => unknown): void }): Promise<Pair> {
  let timeouts = 0;
  const hooks: H1Hooks<null> = {
    request(_o: null, stream: H1Stream): void {
      stream.respond(200, [], 2);
      stream.write(Buffer.from('ok'));
      stream.end();
    },
    protocolError(): void {},
    headersTimeout(_o: null, reply: (text: string) => void): void {
      timeouts++;
      reply('HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    },
    closed(): void {},
  };
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  t.teardown(() => client.destroy());
  const server = await accepted;
  let got = '';
  client.setEncoding('utf8');
  client.on('data', (d: string) => (got += d));
  new H1Connection(server, null, hooks, HEADERS_MS);
  return { client, server, received: () => got, timeouts: () => timeouts };
}

/** Write and wait until the proxy side has read it (the clock must not move before that). */
async function send(p: Pair, text: string): Promise<void> {
  const seen = new Promise<void>((r) => p.server.once('data', () => r()));
  p.client.write(text);
  await seen;
}

const until = async (cond: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
};

t.test('a head trickled one line at a time is answered 408 and closed at the limit from its first byte', async (t) => {
  const p = await pair(t);
  await send(p, 'GET / HTTP/1.1\r\n');
  for (let i = 0; i < HEADERS_TICKS - 1; i++) {
    clock.tick(1);
    if (i % 5 === 0) await send(p, `x-slow-${i}: 1\r\n`);
  }
  t.equal(p.timeouts(), 0, 'open one tick before the limit, lines still coming');
  clock.tick(1);
  t.equal(p.timeouts(), 1, 'request_headers_timeout fired at the limit');
  await until(() => p.client.destroyed || p.received() !== '');
  t.match(p.received(), /^HTTP\/1\.1 408 /, 'the client got 408');
});

t.test('a complete head stops the count; the next head has its own', async (t) => {
  const p = await pair(t);
  await send(p, 'GET / HTTP/1.1\r\nHost: a\r\n');
  clock.tick(HEADERS_TICKS - 2);
  await send(p, '\r\n');
  await until(() => p.received().includes('ok'));
  t.match(p.received(), /^HTTP\/1\.1 200 /, 'the head completed in time and was answered');
  clock.tick(HEADERS_TICKS * 2);
  t.equal(p.timeouts(), 0, 'no header timeout on an idle keep-alive connection');
  await send(p, 'GET /2 HTTP/1.1\r\n');
  clock.tick(HEADERS_TICKS - 1);
  t.equal(p.timeouts(), 0, 'the second head is counted from its own first byte');
  clock.tick(1);
  t.equal(p.timeouts(), 1, 'and times out at its own limit');
});

t.test('a connection that sends nothing is not answered 408', async (t) => {
  const p = await pair(t);
  clock.tick(HEADERS_TICKS * 3);
  t.equal(p.timeouts(), 0, 'no head begun: left to the idle timeout');
  t.notOk(p.server.destroyed, 'still open');
});
