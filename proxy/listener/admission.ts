// Overload protection at accept: how many downstream connections a listener and the whole process
// hold at once. Past a limit a new connection is closed at once, before any byte is read, and
// counted; the connections already open are served as before. Envoy's equivalents: the listener
// connection limit (`listener.<addr>.downstream_cx_overflow`) and the overload manager's
// `global_downstream_max_connections` (`listener.<addr>.downstream_global_cx_overflow`). Both are
// off unless set (`--max-connections-per-listener`, `--max-downstream-connections`), as in Envoy;
// with --concurrency N each worker has the limits.

import type { Logger } from 'pino';
import type { Counter, Gauge, StatsStore } from '../observe/stats';
import { sanitizeStatSegment } from '../observe/stats';

export interface ConnectionLimits {
  /** Open downstream connections per listener (bound port); 0 = no limit. */
  readonly perListener: number;
  /** Open downstream connections of this process over all listeners; 0 = no limit. */
  readonly perProcess: number;
}

export const NO_CONNECTION_LIMITS: ConnectionLimits = { perListener: 0, perProcess: 0 };

/** A refusal is logged at most this often (a flood must not become a flood of log lines). */
const LOG_EVERY_MS = 10_000;

/** One listener's share: its open connections and its overflow counters. */
export class ListenerGuard {
  active = 0;
  constructor(
    readonly admission: Admission,
    readonly name: string,
    readonly overflow: Counter,
    readonly globalOverflow: Counter,
  ) {}

  /** The admitted connection has closed. */
  release(): void {
    this.active--;
    this.admission.released();
  }
}

export class Admission {
  private readonly limits: ConnectionLimits;
  private readonly log: Logger;
  private readonly stats: StatsStore;
  private readonly guards = new Map<string, ListenerGuard>();
  private readonly activeGauge: Gauge;
  private active = 0;
  private refusedSinceLog = 0;
  private lastLog = 0;

  constructor(limits: ConnectionLimits, stats: StatsStore, log: Logger) {
    this.limits = limits;
    this.stats = stats;
    this.log = log;
    this.activeGauge = stats.gauge('overload.global_downstream_max_connections.active');
  }

  /** The guard of the listener (bound port) called `name`, created once. */
  guard(name: string): ListenerGuard {
    let g = this.guards.get(name);
    if (g === undefined) {
      const p = 'listener.' + sanitizeStatSegment(name) + '.';
      g = new ListenerGuard(this, name, this.stats.counter(p + 'downstream_cx_overflow'), this.stats.counter(p + 'downstream_global_cx_overflow'));
      this.guards.set(name, g);
    }
    return g;
  }

  /** May `guard`'s listener take one more connection? Counts it if so; counts the refusal if not. */
  admit(guard: ListenerGuard): boolean {
    const { perListener, perProcess } = this.limits;
    if (perProcess > 0 && this.active >= perProcess) {
      guard.globalOverflow.inc();
      this.refused(guard, 'process', perProcess);
      return false;
    }
    if (perListener > 0 && guard.active >= perListener) {
      guard.overflow.inc();
      this.refused(guard, 'listener', perListener);
      return false;
    }
    guard.active++;
    this.active++;
    this.activeGauge.set(this.active);
    return true;
  }

  released(): void {
    this.active--;
    this.activeGauge.set(this.active);
  }

  private refused(guard: ListenerGuard, scope: 'listener' | 'process', limit: number): void {
    this.refusedSinceLog++;
    const now = Date.now();
    if (now - this.lastLog < LOG_EVERY_MS) return;
    this.log.warn({ listener: guard.name, limit: scope, max: limit, refused: this.refusedSinceLog }, `downstream connection limit reached (${scope}); new connections are closed at once`);
    this.lastLog = now;
    this.refusedSinceLog = 0;
  }
}
