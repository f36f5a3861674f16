// The worker side of `--concurrency N`: answers the primary's requests for stats, cluster states and
// bound listeners, and applies the admin's mutations (reset counters, log level, health check).

import type { ClusterStatus } from '../admin/context';
import type { StatsStore } from '../observe/stats';
import { isToWorker, type ToPrimary } from './protocol';
import { StatsExporter } from './stats-exchange';

export interface WorkerHooks {
  readonly stats: StatsStore;
  /** bring computed gauges up to date before they are reported */
  refresh(): void;
  clusters(): readonly ClusterStatus[];
  listeners(): readonly { name: string; address: string }[];
  setLogLevel(level: string): void;
  setHealthCheckFailed(failed: boolean): void;
  drain(ms: number): void;
  closeNow(reason: string): void;
}

/** Start answering the primary; returns a function that stops listening. */
export function serveWorker(hooks: WorkerHooks): () => void {
  const exporter = new StatsExporter(hooks.stats);
  const onMessage = (m: unknown): void => {
    if (!isToWorker(m) || process.send === undefined) return;
    switch (m.t) {
      case 'gather': {
        hooks.refresh();
        const reply: ToPrimary = { t: 'gathered', id: m.id, stats: exporter.report(), clusters: hooks.clusters(), listeners: hooks.listeners() };
        process.send(reply);
        break;
      }
      case 'reset-counters':
        hooks.stats.resetCounters();
        break;
      case 'log-level':
        hooks.setLogLevel(m.level);
        break;
      case 'health':
        hooks.setHealthCheckFailed(m.failed);
        break;
      case 'drain':
        hooks.drain(m.ms);
        break;
      case 'close-now':
        hooks.closeNow(m.reason);
        break;
    }
  };
  process.on('message', onMessage);
  return () => process.off('message', onMessage);
}

/** Tell the primary which configured listeners are not bound (its readiness depends on it). */
export function reportUnbound(problems: readonly string[]): void {
  if (process.send !== undefined && process.connected) {
    const msg: ToPrimary = { t: 'unbound', problems };
    process.send(msg);
  }
}

export function announceLive(): void {
  if (process.send !== undefined) {
    const msg: ToPrimary = { t: 'live' };
    process.send(msg);
  }
}
