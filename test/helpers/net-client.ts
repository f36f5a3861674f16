// A real TCP client on loopback for listener tests: half-open allowed (a test may end its side and
// still read), Nagle off, errors swallowed (the test asserts on what it reads), destroyed with the test.

import net from 'node:net';

export async function connectedClient(t: { teardown(fn: () => unknown): void }, port: number): Promise<net.Socket> {
  const c = net.connect({ host: '127.0.0.1', port, noDelay: true, allowHalfOpen: true });
  c.on('error', () => {});
  t.teardown(() => { c.destroy(); });
  await new Promise<void>((resolve) => c.once('connect', resolve));
  return c;
}
