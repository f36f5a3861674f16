// The start-up behaviour probe of the bare-handle transport (transport/tcp-handle.ts): a real
// loopback round trip on the handles; a Node whose handles behave otherwise gets the net.Socket path.

import t from 'tap';
import { probeTcpHandles, resetTcpHandlesForTests, tcpHandles, tcpHandlesUnavailableReason } from '../../../../proxy/transport/tcp-handle';

t.afterEach(() => {
  delete process.env['SLUICE_TCP_HANDLES'];
  resetTcpHandlesForTests();
});

t.test('on this Node the handles pass the probe and stay on', async (t) => {
  resetTcpHandlesForTests();
  t.ok(tcpHandles() !== null, `handles load (${tcpHandlesUnavailableReason() || 'yes'})`);
  await probeTcpHandles();
  t.ok(tcpHandles() !== null, 'still on after the probe');
  t.equal(tcpHandlesUnavailableReason(), '');
});

t.test('handles that deliver other bytes than were written fail the probe: the fast path is off, with the reason', async (t) => {
  resetTcpHandlesForTests();
  const h = tcpHandles()!;
  // What a Node whose streamBaseState layout moved would do: the read offset points elsewhere.
  (h as { readOffset(): number }).readOffset = () => 1 << 20;
  await probeTcpHandles();
  t.equal(tcpHandles(), null, 'off');
  t.match(tcpHandlesUnavailableReason(), /failed the start-up probe: read/);
});

t.test('SLUICE_TCP_HANDLES=off: nothing is probed, the fallback says why', async (t) => {
  process.env['SLUICE_TCP_HANDLES'] = 'off';
  resetTcpHandlesForTests();
  await probeTcpHandles();
  t.equal(tcpHandles(), null);
  t.equal(tcpHandlesUnavailableReason(), 'SLUICE_TCP_HANDLES=off');
});
