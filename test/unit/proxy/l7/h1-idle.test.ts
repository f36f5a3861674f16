// Downstream idle timeouts on the proxy's one coarse clock (timer-wheel.ts): a keep-alive connection with
// no request in flight closes once DOWNSTREAM_IDLE_MS has passed without a read or write; activity
// restarts the count; a request in flight is never cut by it. The clock is advanced by hand.

import net from 'node:net';
import t from 'tap';
import { DOWNSTREAM_IDLE_MS, H1Connection, type H1Hooks, type H1Stream } from '../../../../proxy/l7/h1-server';
import { TICK_MS, clock } from '../../../../proxy/timer-wheel';

const IDLE_TICKS = DOWNSTREAM_IDLE_MS / TICK_MS;
const advanceIdleClock = (ticks: number): void => clock.tick(ticks);
// Only advanceIdleClock moves the clock in this file.
clock.manual();
t.teardown(() => clock.automatic());

/** A proxy-side H1Connection on a real socket pair; `answer` false leaves requests in flight. */
async function pair(t: { teardown(fn: () => unknown): void }, answer: boolean): Promise<{ client: net.Socket; server: net.Socket }> {
  const hooks: H1Hooks<null> = {
    request(_o: null, stream: H1Stream): void {
      if (!answer) return;
      stream.respond(200, [], 2);
      stream.write(Buffer.from('ok'));
      stream.end();
    },
    protocolError(): void {},
    headersTimeout(): void {},
    closed(): void {},
  };
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  t.teardown(() => client.destroy());
  const server = await accepted;
  new H1Connection(server, null, hooks);
  return { client, server };
}

async function exchange(client: net.Socket): Promise<void> {
  const got = new Promise<void>((r) => client.once('data', () => r()));
  client.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
  await got;
}

t.test('an idle connection closes after the limit, counted from its last activity', async (t) => {
  const { client, server } = await pair(t, true);
  await exchange(client);
  advanceIdleClock(IDLE_TICKS - 1);
  t.notOk(server.destroyed, 'open one tick before the limit');
  await exchange(client);
  advanceIdleClock(IDLE_TICKS - 1);
  t.notOk(server.destroyed, 'a request restarted the count');
  const closed = new Promise<void>((r) => client.once('close', () => r()));
  client.resume();
  advanceIdleClock(1);
  t.ok(server.destroyed, 'closed at the limit');
  await closed;
});

t.test('a request in flight is not cut by the idle limit', async (t) => {
  const { client, server } = await pair(t, false);
  const seen = new Promise<void>((r) => server.once('data', () => r()));
  client.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
  await seen;
  advanceIdleClock(IDLE_TICKS * 2);
  t.notOk(server.destroyed, 'still open');
});
