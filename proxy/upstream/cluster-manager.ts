// Keeps the live clusters in step with the snapshot. A reload builds new UpstreamCluster objects
// only for clusters whose compiled config changed; unchanged clusters (and their pools, resolved
// hosts, TLS sessions) carry over. Requests already in flight keep the cluster object they picked.
//
// At 10,000 services a snapshot has 60,000 clusters: comparing them, and building the new ones
// with their stats, takes 0.3 s on a reload and seconds on first boot. update() does that work in
// slices of SLICE_MS with a turn of the event loop between them, into a new table; traffic keeps
// using the current table until the new one replaces it in one assignment.

import type { Snapshot } from '../../config/compile/snapshot';
import { ClusterStats, type StatsStore } from '../observe/stats';
import { UpstreamCluster } from './cluster';

/** Longest run of update() work before it lets the event loop take a turn. */
export const SLICE_MS = 8;

export class ClusterManager {
  private readonly store: StatsStore;
  private clusters = new Map<string, UpstreamCluster>();
  private readonly statsByName = new Map<string, ClusterStats>();
  private readonly sliceMs: number;
  private closed = false;

  constructor(store: StatsStore, options: { readonly sliceMs?: number } = {}) {
    this.store = store;
    this.sliceMs = options.sliceMs ?? SLICE_MS;
  }

  /**
   * Apply a snapshot; resolves when new DNS clusters have their first resolution (Envoy's cluster
   * warming), or after WARMING_TIMEOUT_MS at the latest: a slow or dead DNS server must not keep the
   * proxy from starting or a reload from applying. A cluster still resolving then has no hosts (UH,
   * "DNS resolution in progress") until its answer arrives. Until it resolves, get() answers from
   * the clusters of the previous update. Calls must not overlap (the runtime serialises reloads).
   */
  async update(snapshot: Snapshot): Promise<void> {
    const next = new Map<string, UpstreamCluster>();
    const starting: Promise<void>[] = [];
    let sliceStart = performance.now();
    let n = 0;
    for (const [name, config] of snapshot.clusters) {
      if ((++n & 63) === 0 && performance.now() - sliceStart >= this.sliceMs) {
        await nextTurn();
        sliceStart = performance.now();
        if (this.closed) break;
      }
      const existing = this.clusters.get(name);
      if (existing !== undefined && sameValue(existing.config, config)) {
        next.set(name, existing);
        continue;
      }
      const cluster = new UpstreamCluster(config, this.statsFor(name), this.store, existing ?? null);
      next.set(name, cluster);
      starting.push(cluster.start());
    }
    if (starting.length > 0 && !this.closed) await warmed(starting);
    if (this.closed) {
      // close() came while this update ran: the clusters it built are not used by anyone.
      for (const [name, c] of next) if (this.clusters.get(name) !== c) c.close();
      return;
    }
    const old = this.clusters;
    this.clusters = next;
    for (const [name, c] of old) if (next.get(name) !== c) c.close();
  }

  get(name: string): UpstreamCluster | undefined {
    return this.clusters.get(name);
  }

  all(): IterableIterator<UpstreamCluster> {
    return this.clusters.values();
  }

  close(): void {
    this.closed = true;
    for (const c of this.clusters.values()) c.close();
    this.clusters.clear();
  }

  private statsFor(name: string): ClusterStats {
    let s = this.statsByName.get(name);
    if (s === undefined) {
      s = new ClusterStats(this.store, name);
      this.statsByName.set(name, s);
    }
    return s;
  }
}

/** c-ares' default query timeout; Envoy's DNS clusters warm within it or come up empty. */
export const WARMING_TIMEOUT_MS = 5_000;

function warmed(starting: Promise<void>[]): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, WARMING_TIMEOUT_MS);
  });
  return Promise.race([Promise.all(starting).then(() => undefined), timeout]).finally(() => clearTimeout(timer));
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Whether two compiled cluster configs are the same value: plain data (objects, arrays, strings,
 * numbers, booleans, null), compared member by member with no string built. Stricter than the
 * JSON.stringify comparison it replaces where JSON is lossy (NaN/Infinity vs null, Maps as `{}`,
 * undefined members); key order does not matter (it never changes what a cluster does).
 */
export function sameValue(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  if (a instanceof Map || b instanceof Map || a instanceof Set || b instanceof Set) {
    if (!(a instanceof Map && b instanceof Map) && !(a instanceof Set && b instanceof Set)) return false;
    if (a.size !== b.size) return false;
    const ea = [...a.entries()];
    const eb = [...(b as Map<unknown, unknown>).entries()];
    for (let i = 0; i < ea.length; i++) if (!sameValue(ea[i]![0], eb[i]![0]) || !sameValue(ea[i]![1], eb[i]![1])) return false;
    return true;
  }
  if (a instanceof RegExp || b instanceof RegExp) return a instanceof RegExp && b instanceof RegExp && a.source === b.source && a.flags === b.flags;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}
