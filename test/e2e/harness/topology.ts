// Hosts as Linux network namespaces, wired by bridges that live in one extra "bridge" namespace.
//
//   host ns "app"        bridge ns                      host ns "gateway"
//   [mesh] 198.18.1.2 ── veth ── br0 (net "mesh") ── veth ── [mesh] 198.18.1.1
//
// Nothing touches the root namespace's interfaces: veth pairs are created inside the bridge namespace
// with their peer moved straight into the host namespace, so parallel runs (and the machine's own
// network) cannot collide on interface names. Each host gets its own /etc/hosts through
// /etc/netns/<ns>/hosts, which `ip netns exec` bind-mounts over /etc/hosts, so curl and Node's
// dns.lookup resolve names per host, as pods do.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { assertBenchmarkAddress, cidrContains, parseCidr } from './addresses';
import { onProcessEnd } from './cleanup';
import { ProcHandle } from './proc-handle';
import { childEnv, mustRun, run, RunResult, stripRunnerEnvArgv } from './run';

export interface NetSpec {
  name: string; // also the interface name inside each host on this net (so at most 15 chars)
  cidr: string; // e.g. 198.18.1.0/24, inside 198.18.0.0/15
}

export interface RouteSpec {
  to: string; // a CIDR, e.g. 198.18.1.0/24
  via: string;
}

export interface HostSpec {
  name: string; // logical: app, gateway, external, ...
  nets: { net: string; address: string }[];
  defaultVia?: string;
  routes?: RouteSpec[];
  forwarding?: boolean; // net.ipv4.ip_forward, default false
  hosts?: Record<string, string>; // /etc/hosts entries: name -> ip (127.0.0.1 localhost is always there)
  unprivilegedPortStart?: number; // net.ipv4.ip_unprivileged_port_start, default 0 so uid 1337 can bind :80
  // /etc/resolv.conf of the host; default 127.0.0.1 so a name missing from /etc/hosts is never asked
  // of a real DNS server (nothing listens there unless a test starts sluice's DNS on it).
  nameservers?: string[];
}

export interface ExecOptions {
  uid?: number;
  timeoutMs?: number;
  input?: string;
  env?: Record<string, string>;
}

export interface SpawnOptions {
  uid?: number;
  env?: Record<string, string>;
  name?: string;
}

/** Test-object shape we need from tap (kept structural so the harness does not depend on tap's types). */
export interface TeardownHost {
  teardown(fn: () => unknown): void;
}

export const NETNS_PREFIX = 'sluice-e2e-';
const NETNS_RE = /^sluice-e2e-(\d+)-/;
const NAME_RE = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;
const MAX_IFNAME = 15; // IFNAMSIZ - 1
const NETNS_ETC = '/etc/netns';

let sequence = 0;

interface HostState {
  spec: HostSpec;
  ns: string;
  addresses: Map<string, string>; // net name -> address
}

export class Topology {
  /** The namespace holding the bridges. */
  readonly bridgeNs: string;
  private readonly nets: Map<string, NetSpec>;
  private readonly hosts: Map<string, HostState>;
  private readonly procs = new Set<ProcHandle>();
  private readonly created: string[] = []; // namespaces we added, in creation order
  private destroying: Promise<void> | null = null;
  private readonly unregister: () => void;

  /**
   * Build the networks and hosts; registers cleanup in t.teardown and in the process exit/signal handlers.
   * Removes namespaces left behind by earlier runs whose process is dead.
   */
  static async create(t: TeardownHost, nets: NetSpec[], hosts: HostSpec[]): Promise<Topology> {
    validate(nets, hosts);
    await removeLeftovers();
    const topo = new Topology(nets, hosts);
    t.teardown(() => topo.destroy());
    try {
      await topo.build();
    } catch (err) {
      await topo.destroy();
      throw err;
    }
    return topo;
  }

  private constructor(nets: NetSpec[], hosts: HostSpec[]) {
    const base = `${NETNS_PREFIX}${process.pid}-${++sequence}-`;
    this.bridgeNs = `${base}-bridge`; // "--bridge": host names cannot contain "--", so no clash
    this.nets = new Map(nets.map((n) => [n.name, n]));
    this.hosts = new Map(
      hosts.map((h) => [h.name, { spec: h, ns: base + h.name, addresses: new Map(h.nets.map((n) => [n.net, n.address])) }]),
    );
    this.unregister = onProcessEnd(() => this.destroySync());
  }

  /** The real network namespace name of a logical host. */
  ns(host: string): string {
    return this.host(host).ns;
  }

  /** The host's address on `net` (default: its first net). */
  ip(host: string, net?: string): string {
    const h = this.host(host);
    const name = net ?? h.spec.nets[0]?.net;
    const address = name === undefined ? undefined : h.addresses.get(name);
    if (address === undefined) throw new Error(`e2e: host ${host} has no address on net ${String(name)}`);
    return address;
  }

  /** The interface name of `host` on `net` (the net's name). */
  ifname(host: string, net: string): string {
    if (!this.host(host).addresses.has(net)) throw new Error(`e2e: host ${host} is not on net ${net}`);
    return net;
  }

  /** Run a command to completion inside the host (optionally as `uid`); default timeout 10 s. */
  exec(host: string, argv: string[], opts: ExecOptions = {}): Promise<RunResult> {
    return run('ip', this.wrap(host, argv, opts.uid, opts.env), {
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      ...(opts.input !== undefined ? { input: opts.input } : {}),
      ...(opts.env !== undefined ? { env: opts.env } : {}),
    });
  }

  /** Start a long-running process inside the host; it is stopped by destroy(). */
  spawn(host: string, argv: string[], opts: SpawnOptions = {}): ProcHandle {
    if (this.destroying) throw new Error('e2e: topology already destroyed');
    const proc = new ProcHandle(opts.name ?? `${host}:${argv[0] ?? '?'}`, 'ip', this.wrap(host, argv, opts.uid, opts.env), childEnv(opts.env));
    this.procs.add(proc);
    void proc.exited.then(() => this.procs.delete(proc));
    return proc;
  }

  /** Set a net.* sysctl inside the host, e.g. ('gateway', 'net.ipv4.ip_forward', 1). */
  async sysctl(host: string, key: string, value: number | string): Promise<void> {
    if (!/^net\.[a-z0-9_.]+$/.test(key)) throw new Error(`e2e: only net.* sysctls are per namespace: ${key}`);
    const file = `/proc/sys/${key.replace(/\./g, '/')}`;
    // A shell redirect instead of sysctl(8): procps is not among the harness's prerequisites.
    await mustRun('ip', ['netns', 'exec', this.ns(host), 'sh', '-c', `echo "$1" > "$2"`, 'sh', String(value), file]);
  }

  /** Turn IPv4 forwarding on or off in the host (S5: a gateway that does not route for the app). */
  setForwarding(host: string, on: boolean): Promise<void> {
    return this.sysctl(host, 'net.ipv4.ip_forward', on ? 1 : 0);
  }

  /** Replace the host's /etc/hosts entries (127.0.0.1 localhost is always kept). */
  setHosts(host: string, entries: Record<string, string>): void {
    writeFileSync(`${NETNS_ETC}/${this.ns(host)}/hosts`, hostsFile(entries));
  }

  /** Stop every process (SIGTERM, SIGKILL after 2 s) and remove namespaces and /etc/netns dirs. Idempotent. */
  destroy(): Promise<void> {
    if (!this.destroying) this.destroying = this.destroyNow();
    return this.destroying;
  }

  private async destroyNow(): Promise<void> {
    await Promise.all([...this.procs].map((p) => p.stop()));
    // Hosts first, then the bridge namespace: a host's veth pair dies with the host namespace.
    for (const ns of [...this.created].reverse()) await removeNamespace(ns);
    // Only now: if the process dies while this async destroy is under way, the sync path finishes it.
    this.unregister();
  }

  private destroySync(): void {
    // Also runs when an async destroy() is in flight (Ctrl-C during teardown): every step is idempotent.
    this.destroying ??= Promise.resolve();
    for (const p of this.procs) p.killSync();
    for (const ns of [...this.created].reverse()) removeNamespaceSync(ns);
  }

  private host(name: string): HostState {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`e2e: no host named ${name} (have: ${[...this.hosts.keys()].join(', ')})`);
    return h;
  }

  private wrap(host: string, argv: string[], uid: number | undefined, env: Record<string, string> | undefined): string[] {
    const asUser = uid === undefined ? [] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--'];
    return ['netns', 'exec', this.ns(host), ...stripRunnerEnvArgv(env), ...asUser, ...argv];
  }

  private async build(): Promise<void> {
    const all = [this.bridgeNs, ...[...this.hosts.values()].map((h) => h.ns)];
    for (const ns of all) {
      // Recorded before creation so a failure half-way still removes what exists.
      this.created.push(ns);
      await mustRun('ip', ['netns', 'add', ns]);
    }
    for (const h of this.hosts.values()) writeEtc(h);
    await mustRun('ip', ['-n', this.bridgeNs, '-batch', '-'], { input: this.bridgeBatch() });
    await Promise.all([...this.hosts.values()].map((h) => this.configureHost(h)));
  }

  /** Bridges (one per net) and every veth pair, bridge end enslaved, host end moved into the host ns. */
  private bridgeBatch(): string {
    const lines = ['link set lo up'];
    const netIndex = new Map<string, number>();
    for (const net of this.nets.values()) {
      const br = `br${netIndex.size}`;
      netIndex.set(net.name, netIndex.size);
      lines.push(`link add ${br} type bridge`, `link set ${br} up`);
    }
    let hostIndex = 0;
    for (const h of this.hosts.values()) {
      for (const { net } of h.spec.nets) {
        const n = netIndex.get(net) as number;
        const port = `h${hostIndex}n${n}`;
        lines.push(`link add ${port} type veth peer name ${net} netns ${h.ns}`, `link set ${port} master br${n}`, `link set ${port} up`);
      }
      hostIndex++;
    }
    return lines.join('\n') + '\n';
  }

  private async configureHost(h: HostState): Promise<void> {
    const lines = ['link set lo up'];
    for (const { net, address } of h.spec.nets) {
      const prefix = parseCidr((this.nets.get(net) as NetSpec).cidr).prefix;
      lines.push(`addr add ${address}/${prefix} dev ${net}`, `link set ${net} up`);
    }
    for (const r of h.spec.routes ?? []) lines.push(`route add ${r.to} via ${r.via}`);
    if (h.spec.defaultVia) lines.push(`route add default via ${h.spec.defaultVia}`);
    await mustRun('ip', ['-n', h.ns, '-batch', '-'], { input: lines.join('\n') + '\n' });
    await this.sysctl(h.spec.name, 'net.ipv4.ip_forward', h.spec.forwarding ? 1 : 0);
    await this.sysctl(h.spec.name, 'net.ipv4.ip_unprivileged_port_start', h.spec.unprivilegedPortStart ?? 0);
  }
}

function hostsFile(entries: Record<string, string>): string {
  const lines = ['127.0.0.1 localhost'];
  for (const [name, ip] of Object.entries(entries)) lines.push(`${ip} ${name}`);
  return lines.join('\n') + '\n';
}

function writeEtc(h: HostState): void {
  const dir = `${NETNS_ETC}/${h.ns}`;
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  writeFileSync(`${dir}/hosts`, hostsFile(h.spec.hosts ?? {}));
  const servers = h.spec.nameservers ?? ['127.0.0.1'];
  writeFileSync(`${dir}/resolv.conf`, servers.map((s) => `nameserver ${s}`).join('\n') + '\n');
}

function validate(nets: NetSpec[], hosts: HostSpec[]): void {
  const netByName = new Map<string, NetSpec>();
  for (const n of nets) {
    if (!NAME_RE.test(n.name) || n.name.length > MAX_IFNAME || n.name === 'lo') {
      throw new Error(`e2e: net name ${n.name} must match ${NAME_RE} and fit an interface name (15 chars)`);
    }
    if (netByName.has(n.name)) throw new Error(`e2e: duplicate net ${n.name}`);
    assertBenchmarkAddress(n.cidr, `net ${n.name} cidr`);
    netByName.set(n.name, n);
  }
  const seen = new Set<string>();
  for (const h of hosts) {
    if (!NAME_RE.test(h.name)) throw new Error(`e2e: host name ${h.name} must match ${NAME_RE}`);
    if (seen.has(h.name)) throw new Error(`e2e: duplicate host ${h.name}`);
    seen.add(h.name);
    for (const { net, address } of h.nets) {
      const spec = netByName.get(net);
      if (!spec) throw new Error(`e2e: host ${h.name} is on unknown net ${net}`);
      assertBenchmarkAddress(address, `host ${h.name} address`);
      if (!cidrContains(parseCidr(spec.cidr), address)) throw new Error(`e2e: host ${h.name}: ${address} is not in ${spec.cidr}`);
    }
    if (h.defaultVia) assertBenchmarkAddress(h.defaultVia, `host ${h.name} defaultVia`);
    for (const r of h.routes ?? []) {
      assertBenchmarkAddress(r.to, `host ${h.name} route to`);
      assertBenchmarkAddress(r.via, `host ${h.name} route via`);
    }
    for (const [name, ip] of Object.entries(h.hosts ?? {})) {
      if (!/^[A-Za-z0-9.-]+$/.test(name)) throw new Error(`e2e: host ${h.name}: bad /etc/hosts name ${name}`);
      if (!ip.startsWith('127.')) assertBenchmarkAddress(ip, `host ${h.name} /etc/hosts entry ${name}`);
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Our namespaces whose creating process is gone (a crashed or SIGKILLed earlier run). */
async function removeLeftovers(): Promise<void> {
  const listed = await run('ip', ['netns', 'list']);
  for (const line of listed.stdout.split('\n')) {
    const ns = line.split(' ')[0] ?? '';
    const m = NETNS_RE.exec(ns);
    if (!m || Number(m[1]) === process.pid || isAlive(Number(m[1]))) continue;
    await removeNamespace(ns);
  }
  // /etc/netns dirs can outlive their namespace if a run died between the two removals.
  let dirs: string[] = [];
  try {
    dirs = readdirSync(NETNS_ETC);
  } catch {
    return;
  }
  for (const d of dirs) {
    const m = NETNS_RE.exec(d);
    if (m && Number(m[1]) !== process.pid && !isAlive(Number(m[1]))) rmSync(`${NETNS_ETC}/${d}`, { recursive: true, force: true });
  }
}

function pidsOf(text: string): number[] {
  return text
    .split('\n')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

async function removeNamespace(ns: string): Promise<void> {
  // Processes the harness did not start itself (exec() timeouts, a daemon a test forked) would keep the
  // namespace alive after its name is gone; kill whatever still runs in it first.
  const pids = await run('ip', ['netns', 'pids', ns]);
  for (const pid of pidsOf(pids.stdout)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  await run('ip', ['netns', 'del', ns]);
  rmSync(`${NETNS_ETC}/${ns}`, { recursive: true, force: true });
}

function removeNamespaceSync(ns: string): void {
  let pids = '';
  try {
    pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    // namespace already gone
  }
  for (const pid of pidsOf(pids)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    // already gone
  }
  rmSync(`${NETNS_ETC}/${ns}`, { recursive: true, force: true });
}
