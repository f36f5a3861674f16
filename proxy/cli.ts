#!/usr/bin/env node
// The `sluice` command: run | validate | explain | iptables | inject | demo.
// Every flag can also come from the environment as SLUICE_<FLAG> (`--outbound-port` ->
// SLUICE_OUTBOUND_PORT), for containers. Exit codes: 0 ok, 1 invalid config / runtime failure,
// 2 usage error.

import cluster from 'node:cluster';
import type { OutboundPolicy, Role } from '../config/compile/snapshot';
import { ConfigError } from '../config/errors';
import { validatePaths } from '../config/validate';
import { loadPaths } from '../config/resources/load';
import { compile } from '../config/compile/index';
import { runIptablesCommand } from './iptables/command';
import { DEFAULT_DRAIN_MS, Runtime, type RunOptions } from './runtime';
import { defaultConcurrency } from './workers/cpu-limit';
import { KUBERNETES_CONFIG } from '../config/sources/kubernetes/source';
import { runDemo } from './demo';
import { DEFAULT_INJECT_OPTIONS, inject } from './inject/inject';
import { InjectError } from './inject/annotations';
import { egressDecisionLines, explainDetailed, parseExplainTarget } from './explain';
import { DEFAULT_AUDIT_KEEP, DEFAULT_AUDIT_MAX_BYTES } from './observe/audit-log';
import type { OutboundPolicyMode } from './observe/egress-decision';

const USAGE = `usage:
  sluice run --role sidecar|gateway --config PATH [--config PATH ...] [--namespace NS] [--labels k=v,...]
             (--config kubernetes [--kubeconfig FILE] [--watch-namespaces NS,...]: config from the API server)
             [--admin HOST:PORT] [--outbound-port 15001] [--inbound-port 15006] [--certs DIR]
             [--outbound-policy ALLOW_ANY|REGISTRY_ONLY] [--outbound-policy-mode enforce|report] [--access-log stdout|off|PATH]
             [--access-log-format istio|envoy|json] [--concurrency N (default: the cgroup CPU limit, else cores)] [--http-proxy-port PORT] [--no-capture]
             [--prometheus-port 15090|off] [--health-port 15021|off]
             [--audit-log PATH [--audit-log-max-bytes 104857600] [--audit-log-keep 5]]
             [--dns-servers IP[:PORT],...]   DNS clusters: ask these (with TTLs) after /etc/hosts
             [--request-headers-timeout 60s|0]   gateway default 60s, sidecar 0 (off)
             [--max-connections-per-listener N] [--max-downstream-connections N]   per process; 0 = no limit (default)
             [--network NAME] [--network-gateway NAME=HOST:PORT ...]   multi-network endpoints (S8)
             [--locality REGION/ZONE/SUBZONE]   this proxy's locality (localityLbSetting failover/distribute)
             [--drain-duration 5s]   on SIGTERM: readiness 503, keep serving this long, then exit 0
             [--mtls-mode PERMISSIVE|STRICT|DISABLE] [--mtls-port-mode PORT=MODE ...]   sidecar inbound (15006)
             [--dns-capture [--dns-port 15053]]   sidecar DNS proxy for sluice iptables --redirect-dns
  sluice validate --config PATH ... [--namespace NS] [--role R --labels ..]
  sluice explain --config PATH ... --role R [--labels ..] [--network NAME] (--url URL | --sni HOST --port N | --tcp IP:PORT | --inbound PORT)
  sluice iptables [--proxy-uid 1337] [--outbound-port 15001] [--inbound-port 15006] [--exclude-outbound-cidrs ..]
                  [--exclude-outbound-ports ..] [--inbound-ports '*'|list] [--dry-run] [--clean]
  sluice inject [--image sluice:0.1.0] [--config kubernetes|PATH] [--config-map NAME] [--drain-duration 5s]
                [--image-pull-policy IfNotPresent] < app.yaml > injected.yaml   (as istioctl kube-inject)
  sluice demo [--once]     a self-contained sidecar -> egress gateway -> external demo on loopback`;

export class UsageError extends Error {
  readonly code = 'CLI_ERR_USAGE';
}

/** Parsed `--flag value` pairs; repeated flags accumulate. Booleans are flags without a value. */
export interface Flags {
  get(name: string): string | undefined;
  all(name: string): string[];
  has(name: string): boolean;
}

const BOOLEAN_FLAGS = new Set(['dry-run', 'clean', 'once', 'no-capture', 'help', 'dns-capture']);

export function parseFlags(argv: readonly string[], known: readonly string[], env: NodeJS.ProcessEnv = process.env): Flags {
  const values = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument "${arg}"`);
    let name = arg.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    if (!known.includes(name)) throw new UsageError(`unknown flag --${name}`);
    if (value === undefined) {
      if (BOOLEAN_FLAGS.has(name)) value = 'true';
      else {
        value = argv[++i];
        if (value === undefined) throw new UsageError(`--${name} needs a value`);
      }
    }
    values.set(name, [...(values.get(name) ?? []), value]);
  }
  const fromEnv = (name: string): string | undefined => env['SLUICE_' + name.toUpperCase().replace(/-/g, '_')];
  return {
    get: (name) => values.get(name)?.at(-1) ?? fromEnv(name),
    all: (name) => values.get(name) ?? (fromEnv(name)?.split(',').filter((s) => s !== '') ?? []),
    has: (name) => values.has(name) || fromEnv(name) !== undefined,
  };
}

function intFlag(flags: Flags, name: string, dflt: number, min = 0, max = 65535): number {
  const v = flags.get(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${v}"`);
  return n;
}

/** A Go-style duration as Istio writes terminationDrainDuration: `5s`, `500ms`, `1m`; a bare number is seconds. */
export function parseDurationMs(s: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s.trim());
  const ms = m === null ? NaN : Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000);
  if (!(ms >= 0 && ms <= 3_600_000)) throw new UsageError(`--${flag} expects a duration such as 5s, 500ms or 1m (at most 1h), got "${s}"`);
  return Math.round(ms);
}

function optionalPort(flags: Flags, name: string, dflt: number | null): number | null {
  const v = flags.get(name);
  if (v === 'off') return null;
  return v === undefined ? dflt : intFlag(flags, name, 0);
}

export function parseLabels(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (s === undefined || s === '') return out;
  for (const pair of s.split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--labels expects k=v pairs separated by commas, got "${pair}"`);
    out[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return out;
}

function parseHostPort(s: string, flag: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  const port = Number(s.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--${flag} expects HOST:PORT, got "${s}"`);
  return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port };
}

function role(flags: Flags): Role {
  const r = flags.get('role');
  if (r !== 'sidecar' && r !== 'gateway') throw new UsageError(`--role must be sidecar or gateway, got "${r ?? ''}"`);
  return r;
}

const RUN_FLAGS = ['kubeconfig', 'watch-namespaces', 'role', 'config', 'namespace', 'labels', 'admin', 'outbound-port', 'inbound-port', 'certs', 'outbound-policy', 'outbound-policy-mode', 'access-log', 'access-log-format', 'concurrency', 'http-proxy-port', 'no-capture', 'prometheus-port', 'health-port', 'audit-log', 'audit-log-max-bytes', 'audit-log-keep', 'dns-servers', 'network', 'network-gateway', 'drain-duration', 'locality', 'max-connections-per-listener', 'max-downstream-connections', 'request-headers-timeout'];

/** The sidecar inbound side's and DNS capture's flags (issue 15), beside RUN_FLAGS. */
const INBOUND_DNS_FLAGS = ['mtls-mode', 'mtls-port-mode', 'dns-capture', 'dns-port'];

const MTLS_MODES = ['STRICT', 'PERMISSIVE', 'DISABLE'] as const;
type MtlsMode = (typeof MTLS_MODES)[number];

function mtlsMode(v: string, flag: string): MtlsMode {
  const m = v.toUpperCase();
  if (!(MTLS_MODES as readonly string[]).includes(m)) throw new UsageError(`--${flag} must be STRICT, PERMISSIVE or DISABLE, got "${v}"`);
  return m as MtlsMode;
}

/**
 * The sidecar inbound mTLS mode, as a PeerAuthentication would set it: `--mtls-mode MODE` for the
 * workload, `--mtls-port-mode PORT=MODE` (repeatable) per port. Default PERMISSIVE, as Istio.
 */
export function inboundMtlsOptions(flags: Flags): { mode: MtlsMode; ports: Record<number, MtlsMode> } {
  const ports: Record<number, MtlsMode> = {};
  for (const v of flags.all('mtls-port-mode')) {
    const eq = v.indexOf('=');
    const port = Number(v.slice(0, eq));
    if (eq <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`--mtls-port-mode expects PORT=MODE, got "${v}"`);
    ports[port] = mtlsMode(v.slice(eq + 1), 'mtls-port-mode');
  }
  return { mode: mtlsMode(flags.get('mtls-mode') ?? 'PERMISSIVE', 'mtls-mode'), ports };
}

/**
 * `--network NAME` (Istio's ISTIO_META_NETWORK; for a gateway also its REQUESTED_NETWORK_VIEW) and
 * `--network-gateway NAME=HOST:PORT` (repeatable; Istio's meshNetworks gateways): which endpoints
 * this proxy reaches directly and through which gateway it reaches the others.
 */
export function networkOptions(flags: Flags): { network: string; networkGateways: Record<string, string[]>; locality: string } {
  const networkGateways: Record<string, string[]> = {};
  for (const v of flags.all('network-gateway')) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new UsageError(`--network-gateway expects NAME=HOST:PORT, got "${v}"`);
    const { host, port } = parseHostPort(v.slice(eq + 1), 'network-gateway');
    (networkGateways[v.slice(0, eq)] ??= []).push(`${host}:${port}`);
  }
  // `--locality region/zone/subzone`: Istio's node locality, for localityLbSetting (config/compile/locality.ts).
  return { network: flags.get('network') ?? '', networkGateways, locality: flags.get('locality') ?? '' };
}

/** `--outbound-policy-mode enforce|report` (Smokescreen's enforce/report): default enforce. */
function policyMode(flags: Flags): OutboundPolicyMode {
  const mode = flags.get('outbound-policy-mode') ?? 'enforce';
  if (mode !== 'enforce' && mode !== 'report') throw new UsageError(`--outbound-policy-mode must be enforce or report, got "${mode}"`);
  return mode;
}

export function runOptionsFrom(flags: Flags): RunOptions {
  const configPaths = flags.all('config');
  if (configPaths.length === 0) throw new UsageError('--config is required (a file, a directory, several --config flags, or kubernetes)');
  if (configPaths.includes(KUBERNETES_CONFIG) && configPaths.length > 1) throw new UsageError('--config kubernetes reads everything from the API server: it cannot be combined with files');
  const watchNamespaces = flags.all('watch-namespaces').flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
  const policy = flags.get('outbound-policy') ?? 'ALLOW_ANY';
  if (policy !== 'ALLOW_ANY' && policy !== 'REGISTRY_ONLY') throw new UsageError(`--outbound-policy must be ALLOW_ANY or REGISTRY_ONLY, got "${policy}"`);
  const mode = policyMode(flags);
  const format = flags.get('access-log-format') ?? 'istio';
  if (format !== 'istio' && format !== 'envoy' && format !== 'json') throw new UsageError(`--access-log-format must be istio, envoy or json, got "${format}"`);
  const r = role(flags);
  const httpProxy = flags.get('http-proxy-port');
  return {
    role: r,
    configPaths,
    kubernetes: { kubeconfig: flags.get('kubeconfig') ?? null, watchNamespaces: watchNamespaces.length > 0 ? watchNamespaces : null },
    embeddedConfig: null,
    namespace: flags.get('namespace') ?? (r === 'gateway' ? 'istio-system' : 'default'),
    labels: parseLabels(flags.get('labels')),
    admin: parseHostPort(flags.get('admin') ?? '127.0.0.1:15000', 'admin'),
    prometheusPort: optionalPort(flags, 'prometheus-port', 15090),
    healthPort: optionalPort(flags, 'health-port', 15021),
    outboundPort: intFlag(flags, 'outbound-port', 15001, 1),
    inboundPort: intFlag(flags, 'inbound-port', 15006, 1),
    certsDir: flags.get('certs') ?? '/etc/certs',
    ...networkOptions(flags),
    inboundMtls: inboundMtlsOptions(flags),
    dnsCapture: flags.get('dns-capture') === 'true',
    dnsPort: intFlag(flags, 'dns-port', 15053, 1),
    outboundPolicy: policy as OutboundPolicy,
    outboundPolicyMode: mode,
    accessLog: flags.get('access-log') ?? 'stdout',
    accessLogFormat: format,
    dnsServers: flags.all('dns-servers').flatMap((v) => v.split(',')).filter((v) => v !== ''),
    auditLog: flags.get('audit-log') === undefined ? null : {
      path: flags.get('audit-log')!,
      maxBytes: intFlag(flags, 'audit-log-max-bytes', DEFAULT_AUDIT_MAX_BYTES, 1, Number.MAX_SAFE_INTEGER),
      keep: intFlag(flags, 'audit-log-keep', DEFAULT_AUDIT_KEEP, 0, 1000),
    },
    // Default = number of cores, as Envoy's --concurrency; in a container with a CPU
    // limit, that limit (workers/cpu-limit.ts).
    concurrency: intFlag(flags, 'concurrency', defaultConcurrency(), 1, 256),
    drainDurationMs: parseDurationMs(flags.get('drain-duration') ?? `${DEFAULT_DRAIN_MS}ms`, 'drain-duration'),
    httpProxyPort: httpProxy === undefined ? null : intFlag(flags, 'http-proxy-port', 0),
    // Envoy's listener connection limit and overload manager global_downstream_max_connections: off (0) unless set.
    ...(flags.get('request-headers-timeout') !== undefined ? { timeouts: { requestHeadersMs: parseDurationMs(flags.get('request-headers-timeout')!, 'request-headers-timeout') } } : {}),
    connectionLimits: {
      perListener: intFlag(flags, 'max-connections-per-listener', 0, 0, 10_000_000),
      perProcess: intFlag(flags, 'max-downstream-connections', 0, 0, 10_000_000),
    },
    capture: r === 'sidecar' && flags.get('no-capture') !== 'true',
  };
}

async function cmdRun(argv: string[]): Promise<number> {
  const base = runOptionsFrom(parseFlags(argv, [...RUN_FLAGS, ...INBOUND_DNS_FLAGS]));
  // One process: --concurrency 1. Otherwise this process is the primary (config + admin) and forks
  // the workers, which re-run this same command and find themselves to be workers.
  const mode = cluster.isWorker ? 'worker' : base.concurrency > 1 ? 'primary' : 'single';
  const rt = await Runtime.start({ ...base, mode });
  // First signal: drain (proxy/shutdown.ts); the next: close what is left now.
  process.on('SIGTERM', () => rt.shutdown.signal('SIGTERM'));
  process.on('SIGINT', () => rt.shutdown.signal('SIGINT'));
  // A worker whose primary is gone has nobody to answer to.
  if (mode === 'worker') process.once('disconnect', () => rt.shutdown.now('primary gone'));
  return -1; // keep running
}

/** validate and explain read files: `kubernetes` would otherwise be looked up as a path. */
function fileConfigPaths(flags: Flags, command: string): string[] {
  const paths = flags.all('config');
  if (paths.length === 0) throw new UsageError('--config is required');
  if (paths.includes(KUBERNETES_CONFIG)) throw new UsageError(`${command} reads files and directories; --config kubernetes is for sluice run (a directory named kubernetes: ./kubernetes)`);
  return paths;
}

function cmdValidate(argv: string[]): number {
  const flags = parseFlags(argv, ['config', 'namespace', 'role', 'labels', 'outbound-policy', 'certs', 'network', 'network-gateway', 'locality']);
  const paths = fileConfigPaths(flags, 'validate');
  const namespace = flags.get('namespace') ?? 'default';
  const result = validatePaths(paths, { defaultNamespace: namespace });
  const messages = [...result.messages];
  if (result.ok) {
    // Cross-resource problems the compiler finds (unknown hosts, empty subsets) for each role.
    const loaded = loadPaths(paths, { defaultNamespace: namespace });
    const roles: Role[] = flags.get('role') === undefined ? ['sidecar', 'gateway'] : [role(flags)];
    const seen = new Set(messages.map((m) => m.text));
    for (const r of roles) {
      const snap = compile(loaded.resources, { role: r, namespace, labels: parseLabels(flags.get('labels')), outboundPolicy: 'ALLOW_ANY', certsDir: flags.get('certs') ?? '/etc/certs', ...networkOptions(flags) });
      for (const m of snap.warnings) {
        if (seen.has(m.text)) continue;
        seen.add(m.text);
        messages.push(m);
      }
    }
  }
  // Errors as the contract's bare `FILE:DOC: KIND/NAME: field.path: message`, then warnings, marked.
  const errors = messages.filter((m) => m.level === 'error');
  for (const m of errors) process.stdout.write(m.text + '\n');
  for (const m of messages) if (m.level === 'warning') process.stdout.write('warning: ' + m.text + '\n');
  // Objects of other kinds were only warned about once per kind: name each one, so nothing passes unseen.
  for (const line of result.notChecked) process.stdout.write(`not checked (not a kind sluice reads): ${line}\n`);
  if (errors.length === 0) process.stdout.write(`${paths.join(', ')}: valid\n`);
  return errors.length === 0 ? 0 : 1;
}

function cmdExplain(argv: string[]): number {
  const flags = parseFlags(argv, ['config', 'namespace', 'role', 'labels', 'outbound-policy', 'outbound-policy-mode', 'certs', 'url', 'sni', 'port', 'tcp', 'network', 'network-gateway', 'locality', 'inbound', 'mtls-mode', 'mtls-port-mode']);
  const paths = fileConfigPaths(flags, 'explain');
  const r = role(flags);
  const namespace = flags.get('namespace') ?? (r === 'gateway' ? 'istio-system' : 'default');
  const loaded = loadPaths(paths, { defaultNamespace: namespace });
  if (loaded.messages.some((m) => m.level === 'error')) throw new ConfigError(loaded.messages);
  const policy = (flags.get('outbound-policy') ?? 'ALLOW_ANY') as OutboundPolicy;
  const snap = compile(loaded.resources, { role: r, namespace, labels: parseLabels(flags.get('labels')), outboundPolicy: policy, certsDir: flags.get('certs') ?? '/etc/certs', ...networkOptions(flags), inboundMtls: inboundMtlsOptions(flags) });
  const target = parseExplainTarget({ url: flags.get('url'), sni: flags.get('sni'), port: flags.get('port'), tcp: flags.get('tcp'), inbound: flags.get('inbound') });
  if (target === null) throw new UsageError('explain needs --url URL, or --sni HOST --port N, or --tcp IP:PORT, or --inbound PORT');
  const e = explainDetailed(snap, target);
  const decision = policy === 'REGISTRY_ONLY' && r === 'sidecar' ? egressDecisionLines(e, target, policyMode(flags)) : [];
  process.stdout.write([...e.lines, ...decision].join('\n') + '\n');
  return 0;
}

/** `sluice inject`: YAML on stdin, injected YAML on stdout, one report line per pod template on stderr. */
async function cmdInject(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, ['image', 'config', 'config-map', 'drain-duration', 'image-pull-policy']);
  const pull = flags.get('image-pull-policy') ?? DEFAULT_INJECT_OPTIONS.imagePullPolicy;
  if (pull !== 'Always' && pull !== 'IfNotPresent' && pull !== 'Never') throw new UsageError(`--image-pull-policy must be Always, IfNotPresent or Never, got "${pull}"`);
  const configMap = flags.get('config-map') ?? null;
  const config = flags.get('config') ?? (configMap === null ? DEFAULT_INJECT_OPTIONS.config : '/etc/sluice/config');
  if (configMap !== null && config === 'kubernetes') throw new UsageError('--config-map mounts a ConfigMap at a path: give --config PATH (default /etc/sluice/config), not kubernetes');
  const drain = flags.get('drain-duration') ?? DEFAULT_INJECT_OPTIONS.drainDuration;
  parseDurationMs(drain, 'drain-duration');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  try {
    const r = inject(Buffer.concat(chunks).toString('utf8'), { image: flags.get('image') ?? DEFAULT_INJECT_OPTIONS.image, config, configMap, drainDuration: drain, imagePullPolicy: pull });
    process.stdout.write(r.yaml);
    for (const line of r.report) process.stderr.write(line + '\n');
    return 0;
  } catch (e) {
    if (!(e instanceof InjectError)) throw e;
    process.stderr.write(`sluice inject: ${e.message}\n`);
    return 1;
  }
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  // `sluice run --help` and the like: the usage, exit 0 (`sluice iptables` has its own flag list).
  if (cmd !== 'iptables' && (rest.includes('--help') || rest.includes('-h'))) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  switch (cmd) {
    case 'run':
      return cmdRun(rest);
    case 'validate':
      return cmdValidate(rest);
    case 'explain':
      return cmdExplain(rest);
    case 'iptables':
      return runIptablesCommand(rest);
    case 'inject':
      return cmdInject(rest);
    case 'demo':
      return runDemo(parseFlags(rest, ['once']).has('once'));
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return cmd === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${cmd}"`);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      if (code >= 0) process.exitCode = code;
    },
    (err: unknown) => {
      if (err instanceof UsageError) {
        process.stderr.write(`sluice: ${err.message}\n${USAGE}\n`);
        process.exitCode = 2;
      } else if (err instanceof ConfigError) {
        process.stderr.write(`sluice: invalid config:\n${err.messages.filter((m) => m.level === 'error').map((m) => '  ' + m.text).join('\n')}\n`);
        process.exitCode = 1;
      } else {
        const e = err as NodeJS.ErrnoException;
        process.stderr.write(`sluice: ${e.code ? e.code + ': ' : ''}${e.message}\n`);
        process.exitCode = 1;
      }
      // A cluster worker that could not start (e.g. it read the config files while they were
      // invalid) would otherwise be kept alive by its IPC channel, never live and never replaced:
      // exit, so the primary starts another (proxy/workers/pool.ts).
      if (cluster.isWorker) process.exit(process.exitCode);
    },
  );
}
