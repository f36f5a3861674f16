// The proxy's one clock: a coarse hashed timer wheel for idle, connect and request timers.
//
// Why not a setTimeout per timer: a Node Timeout plus its argument array is ~200 bytes that an idle
// connection keeps for its whole life (memory per idle connection is a target, bench/README.md), and
// socket.setTimeout() re-arms a timer on every read and write (net's _unrefTimer: a clock read and
// a timer-list re-insert each time). Here a timer is two fields on an object the owner already has
// (no closure: it is called as `owner.onTimer()`), scheduling is a Set insert, and one unref'd
// interval per process drives everything, stopped while nothing is scheduled.
//
// Precision is one tick (TICK_MS): a timer set for d ms fires between d and d + TICK_MS later (later
// still only if the event loop is). Idle timers are lazy: activity writes one field (`lastActive =
// clock.now()`), and the owner, when its timer fires, compares and schedules again for what is left.
//
// Test seam: `clock.manual()` stops the real interval (until `clock.automatic()`), so that only
// `clock.tick(n)` moves time and a test sees exactly the tick at which something happens.

import { performance } from 'node:perf_hooks';

/** Length of a tick: the precision of every timer on the wheel. */
export const TICK_MS = 100;
/** Slots of the wheel: a timer due further ahead waits in its slot for more turns (one check per turn). */
const SLOTS = 512;

/** Something that can be scheduled on the wheel. `wheelDue` is the wheel's own field: start it at -1. */
export interface WheelTimer {
  /** The tick it is due at, -1 while not scheduled (the wheel's bookkeeping). */
  wheelDue: number;
  /** Called once when due; the timer is no longer scheduled then (schedule again to repeat). */
  onTimer(): void;
}

export class TimerWheel {
  private readonly slots: Set<WheelTimer>[] = Array.from({ length: SLOTS }, () => new Set());
  private ticks = 0;
  private count = 0;
  private interval: NodeJS.Timeout | null = null;
  private isManual = false;
  /** performance.now() at tick 0, minus the ticks made by hand (so real ticks resume from there) */
  private origin = performance.now();

  /** The current time in ms on this clock (a multiple of TICK_MS, monotonic). */
  now(): number {
    return this.ticks * TICK_MS;
  }

  /** Call `t.onTimer()` in `delayMs` (rounded up to whole ticks, at least one). Rescheduling moves it. */
  schedule(t: WheelTimer, delayMs: number): void {
    if (t.wheelDue >= 0) this.slots[t.wheelDue % SLOTS]!.delete(t);
    else this.count++;
    const due = this.ticks + Math.max(1, Math.ceil(delayMs / TICK_MS));
    t.wheelDue = due;
    this.slots[due % SLOTS]!.add(t);
    if (this.interval === null && !this.isManual) this.startInterval();
  }

  /** Unschedule (a no-op when not scheduled). */
  cancel(t: WheelTimer): void {
    if (t.wheelDue < 0) return;
    this.slots[t.wheelDue % SLOTS]!.delete(t);
    t.wheelDue = -1;
    if (--this.count === 0) this.stopInterval();
  }

  /** How many timers are scheduled (tests and diagnostics). */
  scheduled(): number {
    return this.count;
  }

  /** Advance by `n` ticks, firing what falls due: the interval's work, and the test seam. */
  tick(n = 1): void {
    // Real ticks go on from here: the hand-made ones count as time passed.
    this.origin -= n * TICK_MS;
    this.advance(n);
  }

  /** Test seam: only tick() moves the clock from now on. */
  manual(): void {
    this.isManual = true;
    this.stopInterval();
  }

  /** Back to real time (after manual()). */
  automatic(): void {
    this.isManual = false;
    this.origin = performance.now() - this.ticks * TICK_MS;
    if (this.count > 0) this.startInterval();
  }

  private advance(n: number): void {
    for (let i = 0; i < n; i++) {
      this.ticks++;
      const slot = this.slots[this.ticks % SLOTS]!;
      if (slot.size === 0) continue;
      // Deleting the current entry while iterating a Set is well defined; one added now is due later.
      for (const t of slot) {
        if (t.wheelDue > this.ticks) continue;
        slot.delete(t);
        t.wheelDue = -1;
        this.count--;
        t.onTimer();
      }
    }
    if (this.count === 0) this.stopInterval();
  }

  private startInterval(): void {
    // Ticks count from real time, so an interval that fired late catches up instead of drifting.
    this.origin = performance.now() - this.ticks * TICK_MS;
    this.interval = setInterval(onInterval, TICK_MS, this);
    // Timers alone must not keep a stopping process alive.
    this.interval.unref();
  }

  private stopInterval(): void {
    if (this.interval !== null) clearInterval(this.interval);
    this.interval = null;
  }

  /** The interval: as many ticks as real time says have passed. */
  catchUp(): void {
    const due = Math.floor((performance.now() - this.origin) / TICK_MS) - this.ticks;
    if (due > 0) this.advance(due);
  }
}

function onInterval(wheel: TimerWheel): void {
  wheel.catchUp();
}

/** The process's clock. */
export const clock = new TimerWheel();
