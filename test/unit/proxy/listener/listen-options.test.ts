// Which Node versions bind data ports with reusePort in cluster workers (listen-options.ts); the
// binding itself is tested with real workers in test/unit/proxy/workers/multi-worker.test.ts.

import t from 'tap';
import { dataPortListenOptions, reusePortSupported } from '../../../../proxy/listener/listen-options';

t.test('reusePort from Node 22.12 / 23.1 on, on Linux only', async (t) => {
  for (const [version, want] of [['20.20.2', false], ['22.11.0', false], ['22.12.0', true], ['23.0.0', false], ['23.1.0', true], ['24.22.3', true], ['26.0.0', true]] as const) {
    t.equal(reusePortSupported(version, 'linux'), want, `Node ${version} on Linux: ${want}`);
  }
  t.equal(reusePortSupported('24.22.3', 'darwin'), false, 'not on macOS (no balancing)');
});

t.test('one process binds plainly, whatever the Node', async (t) => {
  t.same(dataPortListenOptions('127.0.0.1', 8080), { host: '127.0.0.1', port: 8080 });
  t.same(dataPortListenOptions('0.0.0.0', 0), { host: '0.0.0.0', port: 0 });
});
