// `--concurrency N`: the primary process forks N workers with Node's cluster module. Each worker runs
// the whole data plane (its listeners share the ports: see below; SO_ORIGINAL_DST works on a passed
// socket too) and follows the config files itself. The primary keeps the admin endpoints and stdout: on each admin request it gathers
// the workers' stats and cluster states and merges them (stats-exchange.ts), so the admin shows one
// proxy, as Envoy's does across its worker threads.
//
// How the workers share a port depends on the Node (listener/listen-options.ts): each binds it with
// SO_REUSEPORT where Node has `reusePort` (22.12+, 23.1+, Linux); on Node 20 cluster's round-robin,
// the primary accepting and passing each connection.

import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { ClusterStatus, HostStatus } from '../admin/context';
import type { Counter, StatsStore } from '../observe/stats';
import { isToPrimary, type ToPrimary, type ToWorker } from './protocol';
import { StatsMerger, type StatsReport } from './stats-exchange';

const GATHER_TIMEOUT_MS = 2000;
const START_TIMEOUT_MS = 30_000;
const REPLACE_RETRY_MS = 1000;
/** stdout backlog above which worker access-log lines are dropped (counted) rather than buffered. */
const MAX_STDOUT_BACKLOG = 8 * 1024 * 1024;

interface Gathered {
  readonly stats: StatsReport;
  readonly clusters: readonly ClusterStatus[];
  readonly listeners: readonly { name: string; address: string }[];
}

export class WorkerPool {
  private readonly size: number;
  private readonly log: Logger;
  private readonly merger: StatsMerger;
  private readonly workers = new Map<number, Worker>();
  private readonly pending = new Map<number, { remaining: Set<number>; results: Map<number, Gathered>; done: () => void }>();
  private nextGather = 1;
  private stopping = false;
  private lastClusters: ClusterStatus[] = [];
  private lastListeners: { name: string; address: string }[] = [];
  /** per live worker: configured listeners it could not bind (readiness) */
  private readonly unboundBy = new Map<number, readonly string[]>();
  private readonly stdoutDropped: Counter;

  constructor(size: number, store: StatsStore, log: Logger) {
    this.size = size;
    this.log = log;
    this.merger = new StatsMerger(store);
    this.stdoutDropped = store.counter('access_log.primary_dropped');
  }

  /** Fork the workers; resolves when all are live, rejects when one dies first (its stderr says why). */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      let live = 0;
      const timer = setTimeout(() => reject(new Error(`workers not live after ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      for (let i = 0; i < this.size; i++) {
        this.fork(i, () => {
          if (++live === this.size) {
            clearTimeout(timer);
            resolve();
          }
        }, (code) => {
          clearTimeout(timer);
          reject(Object.assign(new Error(`worker ${i} exited during start-up (code ${code})`), { code: 'PRX_ERR_WORKER_START', exitCode: code }));
        });
      }
    });
  }

  private fork(index: number, onLive: () => void, onEarlyExit: (code: number | null) => void): void {
    const w = cluster.fork({ SLUICE_WORKER_INDEX: String(index) });
    let isLive = false;
    this.workers.set(index, w);
    // A send to a worker that has just died fails with ERR_IPC_CHANNEL_CLOSED, emitted here; without
    // a listener it would take the primary (admin, stdout, every other worker) down with it.
    w.on('error', (err: Error) => this.log.warn({ worker: index, err: err.message }, 'IPC to a worker failed'));
    w.on('message', (m: unknown) => {
      if (!isToPrimary(m)) return;
      if (m.t === 'live') {
        isLive = true;
        onLive();
      } else if (m.t === 'unbound') {
        if (m.problems.length === 0) this.unboundBy.delete(index);
        else this.unboundBy.set(index, m.problems);
      } else this.onMessage(index, m);
    });
    w.on('exit', (code, signal) => {
      this.workers.delete(index);
      this.unboundBy.delete(index);
      // Its counters stay in the totals (retired), so no counter goes backwards (Prometheus).
      this.merger.forget(index);
      this.settleGathersWithout(index);
      if (!isLive) {
        if (!this.stopping) onEarlyExit(code);
        return;
      }
      if (this.stopping) return;
      // A worker died under traffic: replace it so capacity comes back; its counters up to the
      // last gather are kept (what it counted after that is lost with it).
      this.log.error({ worker: index, code, signal }, 'worker exited unexpectedly; starting a new one');
      this.replace(index);
    });
  }

  /** Fork a replacement for worker `index`; one that dies before it is live is tried again a second later. */
  private replace(index: number): void {
    this.fork(index, () => this.log.info({ worker: index }, 'replacement worker is live'), (c) => {
      this.log.error({ worker: index, code: c }, 'replacement worker failed to start; trying again in 1 s');
      setTimeout(() => {
        if (!this.stopping && !this.workers.has(index)) this.replace(index);
      }, REPLACE_RETRY_MS).unref();
    });
  }

  private onMessage(index: number, m: ToPrimary): void {
    if (m.t === 'access-log') {
      if (process.stdout.writableLength > MAX_STDOUT_BACKLOG) this.stdoutDropped.add(countLines(m.data));
      else process.stdout.write(m.data);
      return;
    }
    if (m.t === 'gathered') {
      const g = this.pending.get(m.id);
      if (g === undefined) return;
      g.results.set(index, { stats: m.stats, clusters: m.clusters, listeners: m.listeners });
      g.remaining.delete(index);
      if (g.remaining.size === 0) g.done();
    }
  }

  private settleGathersWithout(index: number): void {
    for (const g of this.pending.values()) {
      // A report it sent before dying would be merged as a new worker's: its retired numbers stand instead.
      g.results.delete(index);
      g.remaining.delete(index);
      if (g.remaining.size === 0) g.done();
    }
  }

  /** Ask every live worker for its state and merge it; resolves within GATHER_TIMEOUT_MS. */
  gather(): Promise<void> {
    const id = this.nextGather++;
    const remaining = new Set(this.workers.keys());
    const results = new Map<number, Gathered>();
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.pending.delete(id);
        this.merger.merge(new Map([...results].map(([k, v]) => [k, v.stats])));
        this.lastClusters = mergeClusters([...results.values()].map((r) => r.clusters));
        const first = results.get(Math.min(...results.keys()));
        if (first !== undefined) this.lastListeners = [...first.listeners];
        resolve();
      };
      const timer = setTimeout(() => {
        if (remaining.size > 0) this.log.warn({ missing: [...remaining] }, 'workers did not report in time; their stats are left out of this reply');
        finish();
      }, GATHER_TIMEOUT_MS);
      this.pending.set(id, { remaining, results, done: finish });
      if (remaining.size === 0) {
        finish();
        return;
      }
      const msg: ToWorker = { t: 'gather', id };
      for (const i of [...remaining]) {
        const w = this.workers.get(i);
        if (w !== undefined && w.isConnected()) w.send(msg);
        else remaining.delete(i);
      }
      if (remaining.size === 0) finish();
    });
  }

  broadcast(msg: ToWorker): void {
    for (const w of this.workers.values()) if (w.isConnected()) w.send(msg);
  }

  /** /reset_counters: every worker's counters and those kept from dead workers. */
  resetCounters(): void {
    this.merger.resetRetired();
    this.broadcast({ t: 'reset-counters' });
  }

  /** Why the data plane is not ready: listeners some worker could not bind (deduplicated). */
  unbound(): string[] {
    return [...new Set([...this.unboundBy.values()].flat())];
  }

  /** SIGTERM: every worker drains for `ms` (keeps accepting, `Connection: close`), no replacements. */
  drain(ms: number): void {
    this.stopping = true;
    this.broadcast({ t: 'drain', ms });
  }

  clusterStatuses(): readonly ClusterStatus[] {
    return this.lastClusters;
  }

  listeners(): readonly { name: string; address: string }[] {
    return this.lastListeners;
  }

  /**
   * Tell every worker to close what is left and exit (each flushes its log); SIGKILL stragglers
   * after 5 s. A worker takes a signal as the start of a drain, so this goes over IPC; SIGTERM only
   * when the channel is gone.
   */
  async stop(reason = 'shutdown'): Promise<void> {
    this.stopping = true;
    const exits = [...this.workers.values()].map((w) => new Promise<void>((resolve) => {
      if (w.isDead()) {
        resolve();
        return;
      }
      const kill = setTimeout(() => w.process.kill('SIGKILL'), 5000);
      w.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      if (w.isConnected()) w.send({ t: 'close-now', reason } satisfies ToWorker);
      else w.process.kill('SIGTERM');
    }));
    await Promise.all(exits);
  }
}

function countLines(s: string): number {
  let n = 0;
  for (let i = s.indexOf('\n'); i >= 0; i = s.indexOf('\n', i + 1)) n++;
  return n;
}

/** One /clusters view of all workers: per host, counters add up; healthy only if healthy everywhere. */
export function mergeClusters(perWorker: readonly (readonly ClusterStatus[])[]): ClusterStatus[] {
  const byName = new Map<string, { status: ClusterStatus; hosts: Map<string, HostStatus> }>();
  for (const list of perWorker) {
    for (const c of list) {
      let e = byName.get(c.name);
      if (e === undefined) byName.set(c.name, (e = { status: c, hosts: new Map() }));
      for (const h of c.hosts) {
        const key = h.address + ':' + h.port;
        const prev = e.hosts.get(key);
        if (prev === undefined) {
          e.hosts.set(key, { ...h, stats: { ...h.stats } });
          continue;
        }
        prev.healthy = prev.healthy && h.healthy;
        for (const k of Object.keys(prev.stats) as (keyof HostStatus['stats'])[]) prev.stats[k] += h.stats[k];
      }
    }
  }
  return [...byName.values()].map((e) => ({ ...e.status, hosts: [...e.hosts.values()] })).sort((a, b) => (a.name < b.name ? -1 : 1));
}
