// Keeps the live clusters in step with the snapshot. A reload builds new UpstreamCluster objects
// only for clusters whose compiled config changed; unchanged clusters (and their pools, resolved
// hosts, TLS sessions) carry over. Requests already in flight keep the cluster object they picked.

import type { Cluster, Snapshot } from '../../config/compile/snapshot';
import { ClusterStats, type StatsStore } from '../observe/stats';
import { UpstreamCluster } from './cluster';

export class ClusterManager {
  private readonly store: StatsStore;
  private clusters = new Map<string, UpstreamCluster>();
  private readonly statsByName = new Map<string, ClusterStats>();
  private readonly fingerprints = new Map<string, string>();

  constructor(store: StatsStore) {
    this.store = store;
  }

  /**
   * Apply a snapshot; resolves when new DNS clusters have their first resolution (Envoy's cluster
   * warming), or after WARMING_TIMEOUT_MS at the latest: a slow or dead DNS server must not keep the
   * proxy from starting or a reload from applying. A cluster still resolving then has no hosts (UH,
   * "DNS resolution in progress") until its answer arrives.
   */
  async update(snapshot: Snapshot): Promise<void> {
    const next = new Map<string, UpstreamCluster>();
    const starting: Promise<void>[] = [];
    for (const [name, config] of snapshot.clusters) {
      const fp = fingerprint(config);
      const existing = this.clusters.get(name);
      if (existing !== undefined && this.fingerprints.get(name) === fp) {
        next.set(name, existing);
        continue;
      }
      const cluster = new UpstreamCluster(config, this.statsFor(name));
      this.fingerprints.set(name, fp);
      next.set(name, cluster);
      starting.push(cluster.start());
    }
    if (starting.length > 0) await warmed(starting);
    const old = this.clusters;
    this.clusters = next;
    for (const [name, c] of old) if (next.get(name) !== c) c.close();
    for (const name of this.fingerprints.keys()) if (!next.has(name)) this.fingerprints.delete(name);
  }

  get(name: string): UpstreamCluster | undefined {
    return this.clusters.get(name);
  }

  all(): IterableIterator<UpstreamCluster> {
    return this.clusters.values();
  }

  close(): void {
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

function fingerprint(c: Cluster): string {
  return JSON.stringify(c);
}
