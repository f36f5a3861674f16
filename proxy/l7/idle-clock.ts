// Idle timeouts of downstream HTTP connections on one shared, coarse clock (STYLE.md rule 11).
// socket.setTimeout() re-arms its timer on every read and every write of the socket (net's
// _unrefTimer: a libuv clock read and a timer-list re-insert each time), several times per
// keep-alive request; here activity costs one field write (the current tick), and one unref'd
// interval per process closes what has been idle past its limit, to within one tick.

/** Length of a tick: the precision of every limit kept here. */
export const TICK_MS = 1_000;

export interface IdleWatched {
  /** the tick of the last activity: set `= idleTick()` on reads and writes */
  lastActive: number;
  /** ticks without activity after which onIdle() is called (once per tick while it stays idle) */
  readonly idleTicks: number;
  onIdle(): void;
}

let tick = 0;
const watched = new Set<IdleWatched>();
let timer: NodeJS.Timeout | null = null;

/** The current tick, for `lastActive`. */
export function idleTick(): number {
  return tick;
}

export function watchIdle(w: IdleWatched): void {
  w.lastActive = tick;
  watched.add(w);
  if (timer === null) {
    timer = setInterval(advanceIdleClock, TICK_MS, 1);
    timer.unref();
  }
}

export function unwatchIdle(w: IdleWatched): void {
  watched.delete(w);
  if (watched.size === 0 && timer !== null) {
    clearInterval(timer);
    timer = null;
  }
}

/** Advance the clock by `ticks` and call onIdle() on what is idle. The interval's callback; tests call it directly. */
export function advanceIdleClock(ticks: number): void {
  tick += ticks;
  for (const w of watched) if (tick - w.lastActive >= w.idleTicks) w.onIdle();
}
