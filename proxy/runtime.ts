// Boots one role: config source -> compiled snapshot -> clusters -> listeners + admin; reloads on
// config change; drains on shutdown. A config that fails to load or compile never replaces the
// running one: the proxy logs every problem (file, document, resource, field) and keeps its last
// good snapshot. A reload is one reference swap (ctx.snapshot); open connections finish on the
// snapshot they started with.

import os from 'node:os';
import type { Logger } from 'pino';
import { compile, type CompileOptions } from '../config/compile/index';
import type { OutboundPolicy, Role, Snapshot } from '../config/compile/snapshot';
import { ConfigError } from '../config/errors';
import { loadText, type LoadResult } from '../config/resources/load';
import { FileSource } from '../config/sources/files';
import { resolveAccess } from '../config/sources/kubernetes/kubeconfig';
import { KUBERNETES_CONFIG, KubernetesSource, type SourceTiming } from '../config/sources/kubernetes/source';
import type { CompiledConfig } from '../config/sources/compile-worker';
import type { AdminContext, ClusterStatus, ServerState } from './admin/context';
import { startAdmin, startHealthListener, startPrometheusListener } from './admin/server';
import { ProxyContext, type DownstreamTimeouts } from './context';
import type { ConnectionLimits } from './listener/admission';
import { CaptureListener } from './listener/capture';
import { probeTcpHandles, tcpHandles, tcpHandlesUnavailableReason } from './transport/tcp-handle';
import { InboundListener } from './listener/inbound';
import { DnsProxy, resolvConfServers } from './dns/proxy';
import { GatewayListeners } from './listener/gateway';
import { HttpProxyListener } from './listener/http-proxy';
import { originalDstSupport } from './transport/original-dst';
import { createAccessLog } from './observe/access-log';
import { withAudit, type AuditLogOptions } from './observe/audit-log';
import { withEgressPolicy, type OutboundPolicyMode } from './observe/egress-decision';
import { createLogger } from './observe/log';
import { StatsStore } from './observe/stats';
import { ClusterManager } from './upstream/cluster-manager';
import { configureDns } from './upstream/dns';
import { ServerTlsContexts } from './tls/server-contexts';
import { IpcAccessLog } from './workers/ipc-access-log';
import { WorkerPool } from './workers/pool';
import { announceLive, reportUnbound, serveWorker } from './workers/worker-agent';
import { Shutdown, type Drainable } from './shutdown';

export const SLUICE_VERSION = '0.1.0';

export interface RunOptions {
  readonly role: Role;
  /** Files or directories, or the one word `kubernetes` (the API server); ignored when `embeddedConfig` is given. */
  readonly configPaths: readonly string[];
  /** With `--config kubernetes`: credentials (--kubeconfig; null = $KUBECONFIG, in-cluster, ~/.kube/config) and --watch-namespaces (null = all). */
  readonly kubernetes?: { readonly kubeconfig: string | null; readonly watchNamespaces: readonly string[] | null; readonly timing?: Partial<SourceTiming> };
  /** Config text used instead of files (the demo's embedded default). */
  readonly embeddedConfig: { readonly name: string; readonly text: string } | null;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly admin: { readonly host: string; readonly port: number };
  /** 15090 /stats/prometheus and 15021 /healthz/ready; null = not opened */
  readonly prometheusPort: number | null;
  readonly healthPort: number | null;
  readonly outboundPort: number;
  readonly inboundPort: number;
  readonly certsDir: string;
  /** `--network`, `--network-gateway`: the split-horizon view (config/compile/registry.ts). */
  readonly network?: string;
  readonly networkGateways?: Readonly<Record<string, readonly string[]>>;
  /** `--locality`: this proxy's region/zone/subzone (config/compile/locality.ts). */
  readonly locality?: string;
  /** `--mtls-mode`, `--mtls-port-mode`: the inbound side's mTLS (config/compile/inbound.ts). */
  readonly inboundMtls?: CompileOptions['inboundMtls'];
  /** Sidecar `--dns-capture`: answer DNS on 127.0.0.1:dnsPort (proxy/dns/proxy.ts); absent = off. */
  readonly dnsCapture?: boolean;
  readonly dnsPort?: number;
  readonly outboundPolicy: OutboundPolicy;
  /** `--outbound-policy-mode`: report lets through what REGISTRY_ONLY would deny, logged `would_deny` (observe/egress-decision.ts). Default enforce. */
  readonly outboundPolicyMode?: OutboundPolicyMode;
  readonly accessLog: string;
  readonly accessLogFormat: 'istio' | 'envoy' | 'json';
  /** `--audit-log PATH`: the egress audit log (proxy/observe/audit-log.ts); null/absent = off. */
  readonly auditLog?: AuditLogOptions | null;
  /** DNS servers (`ip[:port]`) for DNS clusters, queried with TTLs after /etc/hosts; empty = getaddrinfo. */
  readonly dnsServers?: readonly string[];
  readonly concurrency: number;
  /** `--drain-duration`: how long SIGTERM drains before exiting (proxy/shutdown.ts); default 5000 ms. */
  readonly drainDurationMs?: number;
  /** How the process ends after a shutdown (tests replace process.exit). */
  readonly exit?: (code: number) => void;
  /** Sidecar: also serve an explicit HTTP proxy on this port (HTTP_PROXY); null = off. */
  readonly httpProxyPort: number | null;
  /** `--max-connections-per-listener`, `--max-downstream-connections` (listener/admission.ts); absent = none. */
  readonly connectionLimits?: ConnectionLimits;
  /** `--request-headers-timeout`; absent = the role's default (context.ts defaultTimeouts). */
  readonly timeouts?: DownstreamTimeouts;
  /** Sidecar: open the capture listener (needs the SO_ORIGINAL_DST addon). */
  readonly capture: boolean;
  /**
   * `single`: everything in this process. With --concurrency N > 1 the `primary` keeps config and the
   * admin and forks N `worker`s that run the data plane (proxy/workers/pool.ts).
   */
  readonly mode?: 'single' | 'primary' | 'worker';
  readonly logger?: Logger;
}

/** The snapshot of an off-thread reload; a thread failure rejects the reload like a config error. */
function compiledSnapshot(c: CompiledConfig): Snapshot {
  if (c.snapshot === null) throw new Error(c.failure ?? 'the config thread produced no snapshot');
  return c.snapshot;
}

/** Istio's terminationDrainDuration default. */
export const DEFAULT_DRAIN_MS = 5000;

export class Runtime implements Drainable {
  readonly options: RunOptions;
  readonly log: Logger;
  /** SIGTERM handling (cli.ts wires the signals to it). */
  readonly shutdown: Shutdown;
  readonly stats = new StatsStore();
  private readonly clusters: ClusterManager;
  private ctx: ProxyContext | null = null;
  private source: FileSource | KubernetesSource | null = null;
  private gateway: GatewayListeners | null = null;
  private capture: CaptureListener | null = null;
  private inbound: InboundListener | null = null;
  private dns: DnsProxy | null = null;
  private httpProxy: HttpProxyListener | null = null;
  private readonly closers: (() => Promise<void> | void)[] = [];
  private serverState: ServerState = 'PRE_INITIALIZING';
  private healthFailed = false;
  private readonly startedAt = Date.now();
  private reloading: Promise<void> = Promise.resolve();
  private accessLog: { flush(): Promise<void> } | null = null;
  private readonly mode: 'single' | 'primary' | 'worker';
  /** The config in force; in single/worker mode also ctx.snapshot. */
  private current: Snapshot | null = null;
  private workers: WorkerPool | null = null;
  private stopReason = 'shutdown';
  adminPort = 0;
  httpProxyPort = 0;

  private constructor(options: RunOptions) {
    this.options = options;
    this.log = options.logger ?? createLogger();
    this.clusters = new ClusterManager(this.stats);
    this.mode = options.mode ?? 'single';
    this.shutdown = new Shutdown(this, options.drainDurationMs ?? DEFAULT_DRAIN_MS, options.exit ?? ((code) => process.exit(code)));
  }

  /** Start a role; rejects (with every config problem listed) when the initial config is invalid. */
  static async start(options: RunOptions): Promise<Runtime> {
    const rt = new Runtime(options);
    try {
      await rt.boot();
    } catch (e) {
      await rt.stop();
      throw e;
    }
    return rt;
  }

  private compileOptions(): CompileOptions {
    const o = this.options;
    return {
      role: o.role, namespace: o.namespace, labels: o.labels, outboundPolicy: effectiveOutboundPolicy(o), certsDir: o.certsDir,
      network: o.network, networkGateways: o.networkGateways, locality: o.locality, inboundMtls: o.inboundMtls,
      ...(o.dnsCapture === true ? { dnsCapture: true } : {}),
    };
  }

  /** Load + compile; throws ConfigError with all messages when anything is wrong. */
  private build(result: LoadResult): Snapshot {
    return this.checked(result.messages, () => compile(result.resources, this.compileOptions()));
  }

  /** Logs and checks the load messages, then the snapshot `produce` gives (compiled here or on the config thread). */
  private checked(messages: LoadResult['messages'], produce: () => Snapshot): Snapshot {
    for (const m of messages) if (m.level === 'warning') this.log.warn({ code: m.code }, m.text);
    if (messages.some((m) => m.level === 'error')) throw new ConfigError(messages);
    const snapshot = produce();
    for (const m of snapshot.warnings) this.log.warn({ code: m.code }, m.text);
    if (snapshot.warnings.some((m) => m.level === 'error')) throw new ConfigError(snapshot.warnings);
    return snapshot;
  }

  private async boot(): Promise<void> {
    const o = this.options;
    this.serverState = 'INITIALIZING';
    const s = this.stats;
    // Every process of a multi-worker proxy reports the total, so the merged gauge is the total too.
    s.gauge('server.concurrency').set(this.mode === 'single' ? 1 : o.concurrency);
    s.gauge('server.live').set(0);

    let initial: LoadResult;
    if (o.embeddedConfig !== null) {
      initial = loadText(o.embeddedConfig.text, o.embeddedConfig.name, { defaultNamespace: o.namespace });
    } else if (o.configPaths.includes(KUBERNETES_CONFIG)) {
      const k = o.kubernetes ?? { kubeconfig: null, watchNamespaces: null };
      const source = new KubernetesSource({
        access: resolveAccess({ kubeconfig: k.kubeconfig }), namespaces: k.watchNamespaces, load: { defaultNamespace: o.namespace },
        log: this.log, onChange: (r) => this.onConfigChange(r), ...(k.timing !== undefined ? { timing: k.timing } : {}),
      });
      this.source = source;
      // Rebuilds compile on the config thread, as file reloads do.
      source.offThread(this.compileOptions(), (c) => this.onConfigChange(c));
      initial = await source.load();
    } else {
      this.source = new FileSource(o.configPaths, { defaultNamespace: o.namespace, checkFiles: true }, (r) => this.onConfigChange(r));
      // Reloads load + compile on a worker thread: at 10,000 services that is seconds of CPU the
      // proxy's event loop (and every connection on it) would otherwise wait for.
      this.source.offThread(this.compileOptions(), (c) => this.onConfigChange(c));
      initial = this.source.load();
    }
    const snapshot = this.build(initial);
    this.current = snapshot;
    if (this.mode === 'primary') {
      this.workers = new WorkerPool(o.concurrency, s, this.log);
      s.onResetCounters = () => this.workers?.resetCounters();
      this.closers.push(() => this.workers?.stop(this.stopReason));
      await this.workers.start();
    } else {
      await this.startDataPlane(snapshot);
    }
    if (this.mode === 'worker') {
      // Workers keep their own server.* gauges: the primary's merged view takes them from here,
      // refreshed when the primary gathers (see refreshServerStats for why not on a timer).
      const stop = serveWorker({
        stats: s,
        refresh: () => this.refreshServerStats(),
        clusters: () => this.clusterStatuses(),
        listeners: () => this.listenerAddresses(),
        setLogLevel: (level) => (this.log.level = level),
        setHealthCheckFailed: (failed) => (this.healthFailed = failed),
        drain: (ms) => this.shutdown.drain(ms, 'primary draining'),
        closeNow: (reason) => this.shutdown.now(reason),
      });
      this.closers.push(stop);
      reportUnbound(this.unbound());
      this.source?.start();
      this.serverState = 'LIVE';
      this.refreshServerStats();
      announceLive();
      this.log.debug({ worker: process.env['SLUICE_WORKER_INDEX'], listeners: this.listenerAddresses() }, 'worker is live');
      return;
    }
    const adminCtx = this.adminContext();
    const workers = this.workers;
    const beforeRequest = async (): Promise<void> => {
      this.refreshServerStats();
      if (workers !== null) await workers.gather();
    };
    const admin = await startAdmin(adminCtx, o.admin.host, o.admin.port, { logger: this.log, beforeRequest });
    this.adminPort = admin.port;
    this.closers.push(() => admin.close());
    if (o.prometheusPort !== null) {
      const p = await startPrometheusListener(s, '0.0.0.0', o.prometheusPort, { logger: this.log, beforeRequest });
      this.closers.push(() => p.close());
    }
    if (o.healthPort !== null) {
      const h = await startHealthListener(adminCtx, '0.0.0.0', o.healthPort, { logger: this.log });
      this.closers.push(() => h.close());
    }
    this.source?.start();
    this.serverState = 'LIVE';
    this.refreshServerStats();
    if (workers !== null) await workers.gather();
    this.log.info({ role: o.role, workers: this.mode === 'primary' ? o.concurrency : 1, listeners: this.listenerAddresses(), admin: `${o.admin.host}:${admin.port}`, version: snapshot.version, tcpTransport: tcpTransport() }, 'sluice is live');
  }

  /** Clusters, access log, listeners: everything that carries traffic (single and worker modes). */
  private async startDataPlane(snapshot: Snapshot): Promise<void> {
    const o = this.options;
    const s = this.stats;
    if (o.dnsServers !== undefined && o.dnsServers.length > 0) configureDns({ servers: o.dnsServers });
    await this.clusters.update(snapshot);
    await probeTcpHandles();
    // Workers share stdout through the primary (lines from several processes would interleave).
    const logs = withAudit(this.mode === 'worker' && o.accessLog === 'stdout' ? new IpcAccessLog(o.accessLogFormat, s) : createAccessLog({ target: o.accessLog, format: o.accessLogFormat }, s), o.auditLog, s);
    const accessLog = withEgressPolicy(logs, { registryOnly: o.role === 'sidecar' && o.outboundPolicy === 'REGISTRY_ONLY', mode: o.outboundPolicyMode ?? 'enforce' }, s);
    this.accessLog = accessLog;
    this.closers.push(() => accessLog.close());
    const ctx = new ProxyContext({ role: o.role, stats: s, clusters: this.clusters, accessLog, log: this.log, serverTls: new ServerTlsContexts(), snapshot, ...(o.connectionLimits !== undefined ? { limits: o.connectionLimits } : {}), ...(o.timeouts !== undefined ? { timeouts: o.timeouts } : {}), policyMode: o.outboundPolicyMode ?? 'enforce' });
    this.ctx = ctx;

    if (o.role === 'gateway') {
      this.gateway = new GatewayListeners(ctx);
      await this.gateway.sync(snapshot);
      return;
    }
    if (o.capture) {
      const support = originalDstSupport();
      if (!support.ok) {
        // Never guess where a captured connection was going: refuse to capture.
        throw Object.assign(new Error(`the sidecar capture listener needs the SO_ORIGINAL_DST addon: ${support.reason}`), { code: 'PRX_ERR_ORIGINAL_DST' });
      }
      this.capture = new CaptureListener(ctx, o.outboundPort);
      await this.capture.listen('0.0.0.0');
      // The inbound side: without it, `sluice iptables` would leave every pod port refusing.
      this.inbound = new InboundListener(ctx, o.inboundPort);
      await this.inbound.listen('0.0.0.0');
    }
    // One DNS proxy per pod, not per worker: the single process, or the first worker, answers.
    if (o.dnsCapture === true && o.role === 'sidecar' && (this.mode === 'single' || process.env['SLUICE_WORKER_INDEX'] === '0')) {
      const dns = new DnsProxy({ host: '127.0.0.1', port: o.dnsPort ?? 15053, snapshot: () => ctx.snapshot, upstreams: () => resolvConfServers(), log: this.log });
      await dns.listen();
      this.dns = dns;
    }
    if (o.httpProxyPort !== null) {
      this.httpProxy = new HttpProxyListener(ctx, o.httpProxyPort);
      this.httpProxyPort = await this.httpProxy.listen('127.0.0.1');
    }
  }

  /**
   * The server.* gauges, computed when someone reads stats (admin, Prometheus, the primary's gather)
   * rather than on a timer. An idle proxy then runs no JS at all, and that matters for memory: on
   * Node 20 even an empty 1 s interval keeps V8's memory reducer from ever judging the process idle,
   * so the heap a burst of connections grew (young generation, old-space garbage) stays committed
   * until the reducer's 100 s watchdog. Measured, 9,000 idle connections: 8.8 KB per connection
   * with the timer, 4.0 KB 15 s after the burst without it.
   */
  private refreshServerStats(): void {
    const s = this.stats;
    s.gauge('server.uptime').set(Math.floor((Date.now() - this.startedAt) / 1000));
    s.gauge('server.live').set(this.serverState === 'LIVE' ? 1 : 0);
    const mem = process.memoryUsage();
    s.gauge('server.memory_allocated').set(mem.heapUsed);
    s.gauge('server.memory_heap_size').set(mem.heapTotal);
    s.gauge('server.memory_physical_size').set(mem.rss);
    if (this.ctx !== null) s.gauge('server.total_connections').set(this.ctx.activeDownstreamConnections());
    s.gauge('server.state').set(this.serverState === 'LIVE' ? 0 : this.serverState === 'DRAINING' ? 1 : 2);
  }

  /** A new config arrived from the source (loaded, or already compiled off-thread): apply it, or keep the last good one. Serialised. */
  private onConfigChange(update: LoadResult | CompiledConfig): void {
    this.reloading = this.reloading.then(() => this.apply(update));
  }

  private async apply(update: LoadResult | CompiledConfig): Promise<void> {
    if (this.current === null) return;
    let snapshot: Snapshot;
    try {
      snapshot = 'snapshot' in update ? this.checked(update.messages, () => compiledSnapshot(update)) : this.build(update);
    } catch (e) {
      this.stats.counter('sluice.config.rejected').inc();
      const messages = e instanceof ConfigError ? e.messages.filter((m) => m.level === 'error').map((m) => m.text) : [(e as Error).message];
      this.log.error({ errors: messages }, 'config rejected; keeping the last good config');
      return;
    }
    if (snapshot.version === this.current.version) return;
    const ctx = this.ctx;
    if (ctx !== null) {
      await this.clusters.update(snapshot);
      ctx.snapshot = snapshot;
      if (this.gateway !== null) await this.gateway.sync(snapshot);
      if (this.mode === 'worker') reportUnbound(this.unbound());
    }
    this.current = snapshot;
    this.stats.counter('sluice.config.applied').inc();
    this.log.info({ version: snapshot.version }, 'config applied');
  }

  /** Test seam: apply config text as if the source had produced it; resolves when applied or rejected. */
  async applyText(text: string, name = 'inline.yaml'): Promise<void> {
    this.onConfigChange(loadText(text, name, { defaultNamespace: this.options.namespace }));
    await this.reloading;
  }

  /** Wait until every access-log line written so far reached its sink. */
  async flushAccessLog(): Promise<void> {
    await this.accessLog?.flush();
  }

  get snapshot(): Snapshot | null {
    return this.current;
  }

  listenerAddresses(): { name: string; address: string }[] {
    if (this.workers !== null) return [...this.workers.listeners()];
    const out: { name: string; address: string }[] = [];
    if (this.capture !== null) out.push(this.capture.address());
    if (this.inbound !== null) out.push(this.inbound.address());
    if (this.dns !== null) out.push(this.dns.address());
    if (this.httpProxy !== null) out.push(this.httpProxy.address());
    if (this.gateway !== null) out.push(...this.gateway.addresses());
    return out;
  }

  private clusterStatuses(): ClusterStatus[] {
    const out: ClusterStatus[] = [];
    for (const c of this.clusters.all()) {
      out.push({
        name: c.name,
        addedViaApi: true,
        circuitBreakers: c.config.circuitBreakers,
        hosts: c.hosts.map((h) => ({
          address: h.address,
          port: h.port,
          hostname: h.hostname,
          healthy: h.healthy,
          weight: h.weight,
          locality: h.locality,
          priority: h.priority,
          stats: { ...h.counters },
        })),
      });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Configured listeners not listening, with why: readiness is 503 while there is one. */
  unbound(): string[] {
    return this.workers?.unbound() ?? this.gateway?.unbound() ?? [];
  }

  /** SIGTERM (proxy/shutdown.ts): readiness 503 from now, `Connection: close` on HTTP/1.1, workers told. Listeners stay open. */
  beginDrain(ms: number): void {
    this.serverState = 'DRAINING';
    if (this.ctx !== null) this.ctx.draining = true;
    this.workers?.drain(ms);
  }

  openConnections(): number | null {
    return this.ctx === null ? null : this.ctx.activeDownstreamConnections();
  }

  private adminContext(): AdminContext {
    return {
      stats: this.stats,
      snapshot: () => this.snapshot,
      notReady: () => this.unbound(),
      state: () => (this.healthFailed ? 'DRAINING' : this.serverState),
      setHealthCheckFailed: (failed: boolean) => {
        this.healthFailed = failed;
        this.workers?.broadcast({ t: 'health', failed });
      },
      clusters: () => this.workers?.clusterStatuses() ?? this.clusterStatuses(),
      listeners: () => this.listenerAddresses(),
      serverInfo: () => ({
        version: `sluice/${SLUICE_VERSION}/node-${process.version}`,
        state: this.healthFailed ? 'DRAINING' : this.serverState,
        hot_restart_version: 'disabled',
        command_line_options: { ...this.options, logger: undefined, embeddedConfig: this.options.embeddedConfig === null ? null : this.options.embeddedConfig.name },
        node: { id: `${this.options.role}~${os.hostname()}~${this.options.namespace}`, cluster: this.options.role, user_agent_name: 'sluice', user_agent_build_version: SLUICE_VERSION },
        uptime_current_epoch: `${Math.floor((Date.now() - this.startedAt) / 1000)}s`,
        uptime_all_epochs: `${Math.floor((Date.now() - this.startedAt) / 1000)}s`,
      }),
      setLogLevel: (level: string) => {
        this.log.level = level;
        this.workers?.broadcast({ t: 'log-level', level });
      },
      quit: () => {
        void this.stop().then(() => process.exit(0));
      },
    };
  }

  /** Stop accepting, close admin and flush the access log (connections still open are the caller's: it exits). */
  async stop(reason = 'shutdown'): Promise<void> {
    this.stopReason = reason;
    this.serverState = 'DRAINING';
    this.source?.close();
    this.capture?.close();
    this.inbound?.close();
    this.dns?.close();
    this.httpProxy?.close();
    this.gateway?.close();
    this.clusters.close();
    for (const c of this.closers.reverse()) {
      try {
        await c();
      } catch {
        // shutting down: nothing more useful to do
      }
    }
    this.closers.length = 0;
  }
}

/** How plain TCP is carried (proxy/transport/tcp-handle.ts), for the start-up line: a slow TCP port can be told from a fallback. */
function tcpTransport(): string {
  return tcpHandles() !== null ? 'bare handles' : `net.Socket (${tcpHandlesUnavailableReason()})`;
}

/** Report mode compiles REGISTRY_ONLY as ALLOW_ANY: the traffic passes, the egress decision logs it `would_deny`. */
export function effectiveOutboundPolicy(o: Pick<RunOptions, 'outboundPolicy' | 'outboundPolicyMode'>): OutboundPolicy {
  return o.outboundPolicyMode === 'report' ? 'ALLOW_ANY' : o.outboundPolicy;
}
