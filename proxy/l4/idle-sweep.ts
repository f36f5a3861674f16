// tcp_proxy idle_timeout for every relay with the same timeout, checked by one shared interval
// instead of one setTimeout per connection. A Node Timeout plus its argument array is ~200 bytes
// that an idle connection would keep for its whole life (RSS per idle connection is an issue-6
// target), and arming and re-arming it is timer-list work per connection; a Set entry is a few
// words. Istio's default TCP idle timeout is 1 h, so at 10,000 idle connections one sweep every
// 15 min walks 10,000 entries: negligible.
//
// Semantics are the ones the per-connection timer had: each member is asked every quarter of its
// timeout whether bytes moved since the last look, so a silent connection closes between T and
// 1.25 T.

export interface IdleWatched {
  /** Called every quarter timeout; return true when the member closed itself (it leaves the sweep). */
  idleCheck(now: number): boolean;
}

class Sweep {
  readonly members = new Set<IdleWatched>();
  timer: NodeJS.Timeout | null = null;

  constructor(readonly periodMs: number) {}
}

const sweeps = new Map<number, Sweep>();

/** The check period for a timeout: a quarter of it, at least 1 ms. */
function idleCheckPeriod(idleTimeoutMs: number): number {
  return Math.max(1, Math.ceil(idleTimeoutMs / 4));
}

export function watchIdle(member: IdleWatched, idleTimeoutMs: number): void {
  const period = idleCheckPeriod(idleTimeoutMs);
  let sweep = sweeps.get(period);
  if (sweep === undefined) {
    sweep = new Sweep(period);
    sweeps.set(period, sweep);
  }
  sweep.members.add(member);
  if (sweep.timer === null) {
    sweep.timer = setInterval(runSweep, period, sweep);
    // Idle connections alone must not keep a stopping process alive.
    sweep.timer.unref();
  }
}

export function unwatchIdle(member: IdleWatched, idleTimeoutMs: number): void {
  const sweep = sweeps.get(idleCheckPeriod(idleTimeoutMs));
  if (sweep === undefined) return;
  sweep.members.delete(member);
  if (sweep.members.size === 0) stop(sweep);
}

function runSweep(sweep: Sweep): void {
  const now = performance.now();
  // Deleting the current entry while iterating a Set is well defined (later entries are still visited).
  for (const m of sweep.members) if (m.idleCheck(now)) sweep.members.delete(m);
  if (sweep.members.size === 0) stop(sweep);
}

function stop(sweep: Sweep): void {
  if (sweep.timer !== null) clearInterval(sweep.timer);
  sweep.timer = null;
  sweeps.delete(sweep.periodMs);
}

/** Relays currently watched (tests). */
export function watchedCount(): number {
  let n = 0;
  for (const s of sweeps.values()) n += s.members.size;
  return n;
}
