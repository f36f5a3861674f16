// A loopback port that was free a moment ago, for tests and benches that must write a port into
// config before the listener binds it. Probe-then-bind: another process may take the port in between,
// so prefer binding port 0 and reading the address where the code under test allows it.

import net from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}
