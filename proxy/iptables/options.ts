// What `sluice iptables` captures, and how its flags (and SLUICE_<FLAG> env vars) become that.
// Defaults are Istio's injected init-container args:
//   istio-iptables -p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x "" -b '*' -d 15090,15021,15020
// (istio/istio manifests/charts/istio-control/istio-discovery/files/injection-template.yaml).

import * as net from 'node:net';

export interface CaptureOptions {
  /** Traffic from this UID is the proxy's own and is never captured (no loop). */
  proxyUid: number;
  /** Same for this GID (istio-iptables defaults it to the UID). */
  proxyGid: number;
  /** Outbound capture listener (Istio 15001). */
  outboundPort: number;
  /** Inbound capture listener (Istio 15006). */
  inboundPort: number;
  /** Destinations never captured (`-x`), CIDR or bare address, IPv4 or IPv6. */
  excludeOutboundCidrs: string[];
  /** Destinations captured (`-i`): ['*'] = everything not excluded; [] = no outbound capture. */
  includeOutboundCidrs: string[];
  /** Destination ports never captured (`-o`), TCP and UDP. */
  excludeOutboundPorts: number[];
  /** Inbound ports captured (`-b`): '*' = all but excludeInboundPorts; [] = no inbound capture. */
  inboundPorts: '*' | number[];
  /** Inbound ports left alone when inboundPorts is '*' (`-d`): Istio's 15090 prometheus, 15021 health, 15020 agent. */
  excludeInboundPorts: number[];
  /** `--redirect-dns`: the app's DNS (UDP and TCP 53) to the sidecar's DNS proxy on dnsPort. */
  redirectDns: boolean;
  /** The DNS proxy's port (Istio 15053). */
  dnsPort: number;
}

export function defaultCaptureOptions(): CaptureOptions {
  return {
    proxyUid: 1337,
    proxyGid: 1337,
    outboundPort: 15001,
    inboundPort: 15006,
    excludeOutboundCidrs: [],
    includeOutboundCidrs: ['*'],
    excludeOutboundPorts: [],
    inboundPorts: '*',
    excludeInboundPorts: [15090, 15021, 15020],
    redirectDns: false,
    dnsPort: 15053,
  };
}

export const CaptureErrorCode = {
  /** A flag or SLUICE_* env var has a bad value, or the flag is unknown. */
  INVALID_FLAG: 'CAP_ERR_INVALID_FLAG',
  /** iptables-restore / iptables-save (or ip6tables-*) is not installed. */
  TOOL_MISSING: 'CAP_ERR_IPTABLES_MISSING',
  /** Not root / no CAP_NET_ADMIN. */
  NOT_PERMITTED: 'CAP_ERR_NOT_PERMITTED',
  /** iptables-restore rejected the rules (kernel module missing, bad rule). */
  APPLY_FAILED: 'CAP_ERR_APPLY_FAILED',
} as const;

export type CaptureErrorCodeValue = (typeof CaptureErrorCode)[keyof typeof CaptureErrorCode];

export class CaptureError extends Error {
  readonly code: CaptureErrorCodeValue;
  constructor(code: CaptureErrorCodeValue, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CaptureError';
    this.code = code;
  }
}

export interface ParsedIptablesArgs {
  options: CaptureOptions;
  dryRun: boolean;
  clean: boolean;
}

type Target = keyof CaptureOptions | 'dryRun' | 'clean';
type Kind = 'id' | 'port' | 'ports' | 'cidrs' | 'inboundPorts' | 'bool';

interface FlagSpec {
  readonly flag: string;
  readonly target: Target;
  readonly kind: Kind;
  readonly help: string;
}

/** Every flag of `sluice iptables`, in one list (help text, parsing and env names all come from here). */
export const IPTABLES_FLAGS: readonly FlagSpec[] = [
  { flag: '--proxy-uid', target: 'proxyUid', kind: 'id', help: 'UID of the proxy; its traffic is not captured (default 1337)' },
  { flag: '--proxy-gid', target: 'proxyGid', kind: 'id', help: 'GID of the proxy; its traffic is not captured (default: the UID)' },
  { flag: '--outbound-port', target: 'outboundPort', kind: 'port', help: 'outbound capture port (default 15001)' },
  { flag: '--inbound-port', target: 'inboundPort', kind: 'port', help: 'inbound capture port (default 15006)' },
  { flag: '--exclude-outbound-cidrs', target: 'excludeOutboundCidrs', kind: 'cidrs', help: 'comma list of CIDRs never captured' },
  { flag: '--include-outbound-cidrs', target: 'includeOutboundCidrs', kind: 'cidrs', help: "comma list of CIDRs captured, '*' = all (default), '' = none" },
  { flag: '--exclude-outbound-ports', target: 'excludeOutboundPorts', kind: 'ports', help: 'comma list of destination ports never captured' },
  { flag: '--inbound-ports', target: 'inboundPorts', kind: 'inboundPorts', help: "inbound ports captured: '*' (default), a comma list, or '' = no inbound capture" },
  { flag: '--exclude-inbound-ports', target: 'excludeInboundPorts', kind: 'ports', help: "inbound ports not captured with '*' (default 15090,15021,15020)" },
  { flag: '--redirect-dns', target: 'redirectDns', kind: 'bool', help: "send the app's DNS (UDP and TCP port 53, any server) to the sidecar's DNS proxy (run it with --dns-capture)" },
  { flag: '--dns-port', target: 'dnsPort', kind: 'port', help: 'port of the sidecar DNS proxy (default 15053)' },
  { flag: '--dry-run', target: 'dryRun', kind: 'bool', help: 'print the iptables-restore input instead of installing it' },
  { flag: '--clean', target: 'clean', kind: 'bool', help: 'remove the ISTIO_* nat chains and the jumps to them, nothing else' },
];

/** SLUICE_PROXY_UID for --proxy-uid, as for every flag (README.md). */
export function envNameOf(flag: string): string {
  return 'SLUICE_' + flag.slice(2).replace(/-/g, '_').toUpperCase();
}

const FLAG_BY_NAME: ReadonlyMap<string, FlagSpec> = new Map(IPTABLES_FLAGS.map((f) => [f.flag, f]));

function splitList(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

function parsePort(value: string, where: string, problems: string[]): number {
  const n = /^\d{1,5}$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1 && n <= 65535)) {
    problems.push(`${where}: "${value}" is not a port (1-65535)`);
    return 0;
  }
  return n;
}

function parseId(value: string, where: string, problems: string[]): number {
  const n = /^\d{1,10}$/.test(value) ? Number(value) : NaN;
  // 2^32-1 is (uid_t)-1, "no user" to the kernel: never a real owner.
  if (!(n >= 0 && n < 4294967295)) {
    problems.push(`${where}: "${value}" is not a numeric UID/GID`);
    return 0;
  }
  return n;
}

/**
 * Normalise one CIDR: `10.0.0.0/8` stays, a bare address gets /32 (/128). Returns null (and records why)
 * when invalid: unlike istio-iptables, which skips bad ranges with a warning, we refuse, because a silently
 * dropped exclusion captures traffic the operator meant to let through.
 */
export function normaliseCidr(value: string, where: string, problems: string[]): string | null {
  const slash = value.indexOf('/');
  const address = slash === -1 ? value : value.slice(0, slash);
  const family = net.isIP(address);
  if (family === 0) {
    problems.push(`${where}: "${value}" is not an IPv4/IPv6 CIDR (e.g. 10.0.0.0/8, fd00::/8)`);
    return null;
  }
  const max = family === 4 ? 32 : 128;
  if (slash === -1) return `${address}/${max}`;
  const prefixText = value.slice(slash + 1);
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= max)) {
    problems.push(`${where}: "${value}" has a bad prefix length (0-${max})`);
    return null;
  }
  return `${address}/${prefix}`;
}

function applyValue(result: ParsedIptablesArgs, spec: FlagSpec, value: string, where: string, problems: string[]): void {
  const o = result.options;
  switch (spec.kind) {
    case 'bool': {
      const v = value.toLowerCase();
      if (v !== 'true' && v !== '1' && v !== 'false' && v !== '0' && v !== '') {
        problems.push(`${where}: "${value}" is not a boolean (true|false|1|0)`);
        return;
      }
      const on = v === 'true' || v === '1';
      if (spec.target === 'dryRun') result.dryRun = on;
      else if (spec.target === 'redirectDns') o.redirectDns = on;
      else result.clean = on;
      return;
    }
    case 'id':
      if (spec.target === 'proxyUid') o.proxyUid = parseId(value, where, problems);
      else o.proxyGid = parseId(value, where, problems);
      return;
    case 'port':
      if (spec.target === 'outboundPort') o.outboundPort = parsePort(value, where, problems);
      else if (spec.target === 'dnsPort') o.dnsPort = parsePort(value, where, problems);
      else o.inboundPort = parsePort(value, where, problems);
      return;
    case 'ports': {
      const ports = splitList(value).map((p) => parsePort(p, where, problems));
      if (spec.target === 'excludeOutboundPorts') o.excludeOutboundPorts = ports;
      else o.excludeInboundPorts = ports;
      return;
    }
    case 'inboundPorts':
      o.inboundPorts = value.trim() === '*' ? '*' : splitList(value).map((p) => parsePort(p, where, problems));
      return;
    case 'cidrs': {
      const items = splitList(value);
      if (spec.target === 'includeOutboundCidrs' && items.length === 1 && items[0] === '*') {
        o.includeOutboundCidrs = ['*'];
        return;
      }
      const cidrs: string[] = [];
      for (const item of items) {
        if (item === '*') {
          problems.push(`${where}: '*' must be alone` + (spec.target === 'excludeOutboundCidrs' ? ' and is not allowed in an exclusion list' : ''));
          continue;
        }
        const cidr = normaliseCidr(item, where, problems);
        if (cidr !== null) cidrs.push(cidr);
      }
      if (spec.target === 'excludeOutboundCidrs') o.excludeOutboundCidrs = cidrs;
      else o.includeOutboundCidrs = cidrs;
      return;
    }
  }
}

/**
 * Parse `sluice iptables` arguments (argv WITHOUT the `iptables` subcommand). Precedence: flag > SLUICE_* env >
 * default. `--flag value` and `--flag=value` are both accepted; `--dry-run`/`--clean` take no value.
 * Collects every problem and throws one CaptureError(INVALID_FLAG) listing them all.
 */
export function parseIptablesArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ParsedIptablesArgs {
  const result: ParsedIptablesArgs = { options: defaultCaptureOptions(), dryRun: false, clean: false };
  const problems: string[] = [];
  let gidGiven = false;

  for (const spec of IPTABLES_FLAGS) {
    const name = envNameOf(spec.flag);
    const value = env[name];
    if (value === undefined) continue;
    applyValue(result, spec, value, name, problems);
    if (spec.target === 'proxyGid') gidGiven = true;
  }

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const spec = FLAG_BY_NAME.get(name);
    if (spec === undefined) {
      problems.push(arg.startsWith('-') ? `unknown flag ${name} (see \`sluice iptables --help\`)` : `unexpected argument "${arg}"`);
      continue;
    }
    let value: string;
    if (eq !== -1) value = arg.slice(eq + 1);
    else if (spec.kind === 'bool') value = 'true';
    else if (i + 1 < argv.length) value = argv[++i];
    else {
      problems.push(`${name} needs a value`);
      continue;
    }
    applyValue(result, spec, value, name, problems);
    if (spec.target === 'proxyGid') gidGiven = true;
  }

  // istio-iptables: "ProxyGID defaults to ProxyUID".
  if (!gidGiven) result.options.proxyGid = result.options.proxyUid;
  if (result.options.outboundPort !== 0 && result.options.outboundPort === result.options.inboundPort) {
    problems.push(`--outbound-port and --inbound-port are both ${result.options.outboundPort}: inbound traffic would enter the outbound listener`);
  }
  if (problems.length > 0) {
    throw new CaptureError(CaptureErrorCode.INVALID_FLAG, `sluice iptables: ${problems.length} problem(s):\n  ` + problems.join('\n  '));
  }
  return result;
}

export function iptablesUsage(): string {
  const lines = ['usage: sluice iptables [flags]   installs (or prints) the capture rules, as istio-iptables does', ''];
  for (const f of IPTABLES_FLAGS) {
    lines.push(`  ${(f.flag + (f.kind === 'bool' ? '' : ' V')).padEnd(30)} ${f.help}  [env ${envNameOf(f.flag)}]`);
  }
  return lines.join('\n') + '\n';
}
