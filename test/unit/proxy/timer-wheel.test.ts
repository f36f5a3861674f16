// The one clock (proxy/timer-wheel.ts): timers fire at their tick, not before; rescheduling moves
// them; cancelled ones never fire; timers further out than one turn of the wheel wait their turns;
// and in real time the interval drives it.

import t from 'tap';
import { TICK_MS, TimerWheel, type WheelTimer } from '../../../proxy/timer-wheel';

class Probe implements WheelTimer {
  wheelDue = -1;
  fired: number[] = [];
  constructor(private readonly wheel: TimerWheel) {}
  onTimer(): void {
    this.fired.push(this.wheel.now());
  }
}

t.test('a timer fires at the tick its delay rounds up to, once', async (t) => {
  const w = new TimerWheel();
  w.manual();
  const p = new Probe(w);
  w.schedule(p, 3 * TICK_MS - 1);
  t.equal(w.scheduled(), 1);
  w.tick(2);
  t.same(p.fired, [], 'not before');
  w.tick(1);
  t.same(p.fired, [3 * TICK_MS], 'at the third tick');
  w.tick(10);
  t.same(p.fired, [3 * TICK_MS], 'once');
  t.equal(w.scheduled(), 0);
});

t.test('rescheduling moves the timer; cancel drops it; a zero delay is the next tick', async (t) => {
  const w = new TimerWheel();
  w.manual();
  const a = new Probe(w);
  const b = new Probe(w);
  w.schedule(a, 2 * TICK_MS);
  w.schedule(a, 5 * TICK_MS);
  w.schedule(b, 0);
  t.equal(w.scheduled(), 2);
  w.tick(1);
  t.same(b.fired, [TICK_MS]);
  w.cancel(b);
  w.tick(3);
  t.same(a.fired, [], 'moved off tick 2');
  w.tick(1);
  t.same(a.fired, [5 * TICK_MS]);
  const c = new Probe(w);
  w.schedule(c, TICK_MS);
  w.cancel(c);
  w.tick(5);
  t.same(c.fired, [], 'cancelled');
  t.equal(w.scheduled(), 0);
});

t.test('a timer beyond one turn of the wheel waits its turns', async (t) => {
  const w = new TimerWheel();
  w.manual();
  const p = new Probe(w);
  w.schedule(p, 1300 * TICK_MS);
  w.tick(1299);
  t.same(p.fired, []);
  w.tick(1);
  t.same(p.fired, [1300 * TICK_MS]);
});

t.test('a timer may schedule itself again from onTimer (a repeating check)', async (t) => {
  const w = new TimerWheel();
  w.manual();
  let n = 0;
  const r: WheelTimer = { wheelDue: -1, onTimer: () => { if (++n < 3) w.schedule(r, TICK_MS); } };
  w.schedule(r, TICK_MS);
  w.tick(10);
  t.equal(n, 3);
  t.equal(w.scheduled(), 0);
});

t.test('in real time the interval drives the wheel (unref\'d: something else must keep the loop alive), then stops', async (t) => {
  const w = new TimerWheel();
  const keepAlive = setTimeout(() => {}, 10_000);
  const at = w.now();
  const firedAt = await new Promise<number>((resolve) => {
    w.schedule({ wheelDue: -1, onTimer: () => resolve(w.now()) }, 2 * TICK_MS);
  });
  clearTimeout(keepAlive);
  t.ok(firedAt - at >= 2 * TICK_MS, 'on the wheel\'s own clock, not before its delay');
  t.equal(w.scheduled(), 0);
});
