// `sluice iptables`: install, print or remove the sidecar's traffic capture rules, as istio-iptables does in
// REDIRECT mode. Rules are applied with iptables-restore (one atomic transaction per family; nf_tables backend
// or legacy, whichever the `iptables` on PATH is). Run as root (CAP_NET_ADMIN) in the app's network namespace,
// before the app starts; the proxy itself then runs unprivileged as the proxy UID.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import {
  CaptureError,
  CaptureErrorCode,
  iptablesUsage,
  parseIptablesArgs,
  type CaptureOptions,
} from './options';
import { buildCleanRules, buildIp6Rules, buildRules } from './rules';

export {
  CaptureError,
  CaptureErrorCode,
  defaultCaptureOptions,
  envNameOf,
  IPTABLES_FLAGS,
  iptablesUsage,
  parseIptablesArgs,
  type CaptureErrorCodeValue,
  type CaptureOptions,
  type ParsedIptablesArgs,
} from './options';
export { buildCleanRules, buildIp6Rules, buildRules, CAPTURE_CHAINS } from './rules';

interface Family {
  readonly save: string;
  readonly restore: string;
  readonly pkg: string;
}

const IPV4: Family = { save: 'iptables-save', restore: 'iptables-restore', pkg: 'iptables' };
const IPV6: Family = { save: 'ip6tables-save', restore: 'ip6tables-restore', pkg: 'iptables' };

/** iptables-restore on a busy host can wait on the xtables lock; never hang the init step forever. */
const TOOL_TIMEOUT_MS = 30_000;

/** IPv6 rules are installed when the kernel has IPv6; otherwise there is no v6 traffic to capture. */
function hostHasIpv6(): boolean {
  try {
    return fs.readFileSync('/proc/sys/net/ipv6/conf/all/disable_ipv6', 'utf8').trim() !== '1';
  } catch {
    return false;
  }
}

function run(tool: string, args: readonly string[], input: string | undefined, pkg: string): string {
  try {
    return execFileSync(tool, args, {
      input,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: TOOL_TIMEOUT_MS,
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string; status?: number | null };
    if (e.code === 'ENOENT') {
      throw new CaptureError(CaptureErrorCode.TOOL_MISSING, `${tool} not found on PATH: install the "${pkg}" package (e.g. apt-get install -y ${pkg})`, { cause: err });
    }
    const stderr = (e.stderr ?? '').trim();
    const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
    if (/permission denied|you must be root|operation not permitted/i.test(stderr)) {
      throw new CaptureError(
        CaptureErrorCode.NOT_PERMITTED,
        `${tool} failed: ${stderr || e.message}\nsluice iptables must run as root (or with CAP_NET_ADMIN) in the app's network namespace; this process has uid ${uid}.`,
        { cause: err },
      );
    }
    throw new CaptureError(CaptureErrorCode.APPLY_FAILED, `${tool} ${args.join(' ')} failed: ${stderr || e.message}`, { cause: err });
  }
}

function cleanFamily(fam: Family): void {
  const save = run(fam.save, ['-t', 'nat'], undefined, fam.pkg);
  const script = buildCleanRules(save);
  if (script !== '') run(fam.restore, ['--noflush'], script, fam.pkg);
}

/** Remove exactly the ISTIO_* nat chains sluice creates and the jumps to them; other rules stay. Idempotent. */
export function cleanRules(): void {
  cleanFamily(IPV4);
  if (hostHasIpv6()) cleanFamily(IPV6);
}

/** Install the capture rules (IPv4, and IPv6 when the host has it). Cleans first, so running it twice is safe. */
export function installRules(o: CaptureOptions): void {
  cleanRules();
  run(IPV4.restore, ['--noflush'], buildRules(o), IPV4.pkg);
  if (!hostHasIpv6()) return;
  try {
    run(IPV6.restore, ['--noflush'], buildIp6Rules(o), IPV6.pkg);
  } catch (err) {
    // Half-installed capture (v4 only) would look like it works while v6 traffic escapes: undo v4, report.
    try {
      cleanFamily(IPV4);
    } catch {
      // the v6 error below is the one to act on
    }
    throw err;
  }
}

/** What --dry-run prints: the exact restore input for each family, labelled with the command that takes it. */
export function dryRunText(o: CaptureOptions, clean: boolean): string {
  if (clean) {
    return '# sluice iptables --clean: deletes the jumps to, then flushes and deletes, these nat chains (v4 and v6)\n' +
      '# ISTIO_INBOUND ISTIO_REDIRECT ISTIO_IN_REDIRECT ISTIO_OUTPUT\n';
  }
  return '# iptables-restore --noflush\n' + buildRules(o) + '# ip6tables-restore --noflush\n' + buildIp6Rules(o);
}

/** `sluice iptables ...` (argv without the subcommand). Returns the process exit code: 0 ok, 1 failed, 2 usage. */
export function runIptablesCommand(argv: readonly string[]): number {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(iptablesUsage());
    return 0;
  }
  let parsed;
  try {
    parsed = parseIptablesArgs(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${iptablesUsage()}`);
    return 2;
  }
  if (parsed.dryRun) {
    process.stdout.write(dryRunText(parsed.options, parsed.clean));
    return 0;
  }
  try {
    if (parsed.clean) {
      cleanRules();
      process.stdout.write('sluice iptables: removed the ISTIO_* capture chains\n');
    } else {
      installRules(parsed.options);
      process.stdout.write(
        `sluice iptables: capturing outbound TCP -> ${parsed.options.outboundPort}` +
          (parsed.options.inboundPorts === '*' || parsed.options.inboundPorts.length > 0 ? `, inbound -> ${parsed.options.inboundPort}` : ', no inbound capture') +
          `; uid/gid ${parsed.options.proxyUid}/${parsed.options.proxyGid} excluded\n`,
      );
    }
    return 0;
  } catch (err) {
    const code = err instanceof CaptureError ? err.code : 'CAP_ERR_APPLY_FAILED';
    process.stderr.write(`sluice iptables: ${code}: ${(err as Error).message}\n`);
    return 1;
  }
}
