// Connection limits at accept (proxy/listener/admission.ts) through a real gateway on loopback, on
// both TCP transports: past the listener's limit (and past the process's, over two listeners) a new
// connection is closed at once without a byte, counted in downstream_cx_overflow /
// downstream_global_cx_overflow, while the connections already open keep relaying; a connection
// that closes gives its place back.

import net from 'node:net';
import t from 'tap';
import { freePort, startTestRuntime } from '../../../helpers/gateway';
import { resetTcpHandlesForTests } from '../../../../proxy/transport/tcp-handle';

async function echo(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

function config(ports: number[], upstream: number): string {
  return `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw }
spec:
  selector: { istio: egressgateway }
  servers:
${ports.map((p) => `  - port: { number: ${p}, name: tcp-${p}, protocol: TCP }\n    hosts: ["*"]`).join('\n')}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: echo }
spec:
  hosts: [echo.test]
  ports: [{ number: 7000, name: tcp, protocol: TCP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { tcp: ${upstream} } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: echo }
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp:
  - route: [{ destination: { host: echo.test, port: { number: 7000 } } }]
`;
}

interface Client {
  readonly socket: net.Socket;
  /** Resolves with what the proxy sent before it closed the connection. */
  readonly ended: Promise<string>;
  roundTrip(text: string): Promise<string>;
}

function connect(port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let got = '';
    let waiter: (() => void) | null = null;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      got += d;
      waiter?.();
    });
    socket.on('error', () => {});
    const ended = new Promise<string>((r) => socket.on('close', () => r(got)));
    socket.once('connect', () =>
      resolve({
        socket,
        ended,
        roundTrip: (text) =>
          new Promise((r) => {
            const start = got.length;
            waiter = () => {
              if (got.length - start >= text.length) r(got.slice(start));
            };
            socket.write(text);
          }),
      }),
    );
    socket.once('error', reject);
  });
}

for (const transport of ['handles', 'sockets'] as const) {
  t.test(`connection limits on ${transport}`, async (tt) => {
    process.env['SLUICE_TCP_HANDLES'] = transport === 'handles' ? 'on' : 'off';
    resetTcpHandlesForTests();
    tt.teardown(() => {
      delete process.env['SLUICE_TCP_HANDLES'];
      resetTcpHandlesForTests();
    });

    tt.test('per listener: the 4th connection is closed at once and counted; the 3 open ones are served', async (t) => {
      const up = await echo(t);
      const port = await freePort();
      const gw = await startTestRuntime(t, config([port], up), { connectionLimits: { perListener: 3, perProcess: 0 } });
      const open = [await connect(port), await connect(port), await connect(port)];
      for (const [i, c] of open.entries()) t.equal(await c.roundTrip(`hello ${i}\n`), `hello ${i}\n`, `connection ${i} relays`);
      const over = await connect(port); // the kernel accepts; sluice closes it
      t.equal(await over.ended, '', 'the connection past the limit is closed without a byte');
      t.equal(gw.stat(`listener.0.0.0.0_${port}.downstream_cx_overflow`), 1, 'downstream_cx_overflow counts it');
      for (const [i, c] of open.entries()) t.equal(await c.roundTrip(`again ${i}\n`), `again ${i}\n`, `connection ${i} still relays`);
      open[0]!.socket.destroy();
      await open[0]!.ended;
      // Its place is given back when sluice sees the close: retry until it does.
      let next: Client | null = null;
      for (let i = 0; i < 50 && next === null; i++) {
        const c = await connect(port);
        const answer = await Promise.race([c.roundTrip('back\n'), c.ended.then(() => null)]);
        if (answer === 'back\n') next = c;
        else await new Promise((r) => setTimeout(r, 20));
      }
      t.ok(next !== null, 'after one closes, a new connection is served');
      next?.socket.destroy();
      for (const c of open) c.socket.destroy();
    });

    tt.test('per process: over two listeners, the 3rd connection is refused on whichever listener', async (t) => {
      const up = await echo(t);
      const [a, b] = [await freePort(), await freePort()];
      const gw = await startTestRuntime(t, config([a, b], up), { connectionLimits: { perListener: 0, perProcess: 2 } });
      const ca = await connect(a);
      const cb = await connect(b);
      t.equal(await ca.roundTrip('a\n'), 'a\n', 'listener a relays');
      t.equal(await cb.roundTrip('b\n'), 'b\n', 'listener b relays');
      const over = await connect(b);
      t.equal(await over.ended, '', 'the 3rd connection is closed without a byte');
      t.equal(gw.stat(`listener.0.0.0.0_${b}.downstream_global_cx_overflow`), 1, 'downstream_global_cx_overflow counts it on its listener');
      t.equal(gw.stat('overload.global_downstream_max_connections.active'), 2, 'the process gauge shows the two open connections');
      t.equal(await ca.roundTrip('a2\n'), 'a2\n', 'the open connections are still served');
      ca.socket.destroy();
      cb.socket.destroy();
    });
  });
}
