// Stats across worker processes. Each worker has its own StatsStore (the hot path stays a field
// increment); the primary, which answers the admin, gathers them on demand and merges them into its
// own store, so /stats shows one Envoy-like view of the whole proxy.
//
// The exchange is incremental: a worker sends the names of stats created since its last report
// (once each) and then only numbers, in creation order, so a /stats at 10k clusters does not ship
// 300k names per request.

import { HISTOGRAM_BUCKETS, type AnyStat, type PromView, type StatKind, type StatsStore } from '../observe/stats';

export interface StatsReport {
  /**
   * [name, kind, Prometheus view] of stats created since the previous report, in creation order. The
   * view travels along because only the worker knows the scopes (cluster names with dots) it registered.
   */
  readonly added: readonly (readonly [string, StatKind, PromView])[];
  /** counter/gauge: value; histogram: counts..., sum, count — for every stat, in creation order. */
  readonly values: readonly number[];
  /** creation-order indexes of stats whose `used` flag is set */
  readonly used: readonly number[];
}

const HISTOGRAM_WIDTH = HISTOGRAM_BUCKETS.length + 1 + 2;

/** Worker side: remembers how many stats it already described. */
export class StatsExporter {
  private readonly store: StatsStore;
  private described = 0;

  constructor(store: StatsStore) {
    this.store = store;
  }

  report(): StatsReport {
    const added: [string, StatKind, PromView][] = [];
    const values: number[] = [];
    const used: number[] = [];
    let i = 0;
    for (const s of this.store.inCreationOrder()) {
      if (i >= this.described) added.push([s.name, s.kind, s.prom]);
      if (s.used) used.push(i);
      if (s.kind === 'histogram') values.push(...s.counts, s.sum, s.count);
      else values.push(s.value);
      i++;
    }
    this.described = i;
    return { added, values, used };
  }
}

/** Gauges that count things per process add up; the others (membership, uptime) are the same in each worker. */
function gaugeAddsUp(name: string): boolean {
  return /(_active|_buffered|memory_allocated|memory_heap_size|memory_physical_size|total_connections)$/.test(name);
}

/** Primary side: the merged store and, per worker, its stats in that worker's creation order. */
export class StatsMerger {
  readonly store: StatsStore;
  private readonly perWorker = new Map<number, AnyStat[]>();
  /** per live worker, the values of its last merged report (creation order, as `values`) */
  private readonly lastValues = new Map<number, readonly number[]>();
  /**
   * Counters and histograms of workers that have exited, as they last reported them: added to
   * every merge, so a worker's replacement (starting from zero) never makes a total go down.
   */
  private readonly retired = new Map<AnyStat, number[]>();
  private readonly sums = new Map<AnyStat, boolean>();

  constructor(store: StatsStore) {
    this.store = store;
  }

  /** A worker exited: keep its counters (not its gauges: what it held open is gone); its replacement's next report describes everything again. */
  forget(worker: number): void {
    const list = this.perWorker.get(worker);
    const values = this.lastValues.get(worker);
    this.perWorker.delete(worker);
    this.lastValues.delete(worker);
    if (list === undefined || values === undefined) return;
    let v = 0;
    for (const s of list) {
      const width = s.kind === 'histogram' ? HISTOGRAM_WIDTH : 1;
      // A gauge only this worker had would otherwise keep its last value (merge recomputes only
      // the stats some live worker reports).
      if (s.kind === 'gauge') s.value = 0;
      else {
        let kept = this.retired.get(s);
        if (kept === undefined) this.retired.set(s, (kept = new Array<number>(width).fill(0)));
        for (let i = 0; i < width; i++) kept[i]! += values[v + i] ?? 0;
      }
      v += width;
    }
  }

  /** /reset_counters: what dead workers counted goes too. */
  resetRetired(): void {
    this.retired.clear();
  }

  /** Replace the merged values with the combination of these reports (one per live worker). */
  merge(reports: ReadonlyMap<number, StatsReport>): void {
    const touched = new Set<AnyStat>();
    const zero = (s: AnyStat): void => {
      if (touched.has(s)) return;
      touched.add(s);
      s.used = false;
      if (s.kind === 'histogram') {
        s.counts.fill(0);
        s.sum = 0;
        s.count = 0;
      } else s.value = 0;
    };
    for (const [s, kept] of this.retired) {
      zero(s);
      if (kept.some((x) => x !== 0)) s.used = true;
      if (s.kind === 'histogram') {
        for (let b = 0; b < s.counts.length; b++) s.counts[b]! += kept[b] ?? 0;
        s.sum += kept[s.counts.length] ?? 0;
        s.count += kept[s.counts.length + 1] ?? 0;
      } else s.value += kept[0] ?? 0;
    }
    for (const [worker, r] of reports) {
      this.lastValues.set(worker, r.values);
      let list = this.perWorker.get(worker);
      if (list === undefined) this.perWorker.set(worker, (list = []));
      for (const [name, kind, prom] of r.added) {
        list.push(kind === 'counter' ? this.store.counter(name, prom) : kind === 'gauge' ? this.store.gauge(name, prom) : this.store.histogram(name, prom));
      }
      let v = 0;
      for (const s of list) {
        zero(s);
        if (s.kind === 'histogram') {
          for (let b = 0; b < s.counts.length; b++) s.counts[b]! += r.values[v + b] ?? 0;
          s.sum += r.values[v + s.counts.length] ?? 0;
          s.count += r.values[v + s.counts.length + 1] ?? 0;
          v += HISTOGRAM_WIDTH;
        } else if (s.kind === 'gauge') {
          let sums = this.sums.get(s);
          if (sums === undefined) this.sums.set(s, (sums = gaugeAddsUp(s.name)));
          const x = r.values[v++] ?? 0;
          s.value = sums ? s.value + x : Math.max(s.value, x);
        } else {
          s.value += r.values[v++] ?? 0;
        }
      }
      for (const i of r.used) {
        const s = list[i];
        if (s !== undefined) s.used = true;
      }
    }
  }
}
