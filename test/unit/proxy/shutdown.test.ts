// The shutdown sequence (proxy/shutdown.ts) on a recording target: which calls a first and a second
// signal make, in order. The timing (the drain really lasts --drain-duration) is test/e2e/drain.test.ts.

import pino from 'pino';
import t from 'tap';
import { Shutdown, type Drainable } from '../../../proxy/shutdown';

function target(open: number | null): Drainable & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    log: pino({ level: 'silent' }),
    beginDrain: (ms) => void calls.push(`drain ${ms}`),
    openConnections: () => open,
    stop: async (reason) => void calls.push(`stop ${reason}`),
  };
}

t.test('first signal drains; second closes now and exits 0', async (t) => {
  const tg = target(2);
  const exits: number[] = [];
  const s = new Shutdown(tg, 60_000, (c) => exits.push(c));
  s.signal('SIGTERM');
  t.equal(s.state, 'draining');
  t.same(tg.calls, ['drain 60000']);
  s.drain(10, 'primary draining');
  t.same(tg.calls, ['drain 60000'], 'a drain already running is not restarted');
  s.signal('SIGTERM');
  t.equal(s.state, 'closing');
  await new Promise((r) => setImmediate(r));
  t.same(tg.calls, ['drain 60000', 'stop second SIGTERM']);
  t.same(exits, [0]);
  s.signal('SIGTERM');
  await new Promise((r) => setImmediate(r));
  t.same(exits, [0], 'a third signal does nothing more');
});

t.test('a zero drain duration stops at once', async (t) => {
  const tg = target(0);
  const exits: number[] = [];
  new Shutdown(tg, 0, (c) => exits.push(c)).signal('SIGINT');
  await new Promise((r) => setImmediate(r));
  t.same(tg.calls, ['drain 0', 'stop drain duration 0']);
  t.same(exits, [0]);
});

t.test('a failing stop still exits 0', async (t) => {
  const tg = target(null);
  tg.stop = async () => {
    throw new Error('boom');
  };
  const exits: number[] = [];
  new Shutdown(tg, 1000, (c) => exits.push(c)).now('primary gone');
  await new Promise((r) => setImmediate(r));
  t.same(exits, [0]);
});
