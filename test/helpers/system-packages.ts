// The host commands the root-only tests run, the Debian package that ships each, and their install.
//
// `npm test` runs this file once before tap starts any test file, so a fresh machine gets every
// package in one apt-get. Test files run in parallel (`jobs: 2`), and when each installed what it
// missed, two apt-gets raced for dpkg's lock on a new machine and one file failed ("Could not get
// lock /var/lib/dpkg/lock-frontend", or a failed `apt-get update`). Not tap's `before` option: tap
// records coverage of that process even with coverage disabled, and then fails the run on it.
// The per-file checks (e2e/harness/prereqs.ts, unit/proxy/listener/need-root.ts) stay as the
// fallback for a file run on its own, and they wait for apt's lock instead of failing on it.
//
// Not root, not Linux, or no apt-get: this does nothing; the tests themselves skip loudly (and fail
// when CI=true), so nothing is assumed here.

import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/** Every command a root-only test runs that a minimal Debian may lack, and its package. */
export const COMMAND_PACKAGES: Readonly<Record<string, string>> = {
  ip: 'iproute2',
  iptables: 'iptables',
  'iptables-restore': 'iptables',
  'iptables-save': 'iptables',
  'ip6tables-save': 'iptables',
  nft: 'nftables',
  curl: 'curl',
  openssl: 'openssl',
  nc: 'netcat-openbsd',
  setpriv: 'util-linux',
  nghttp: 'nghttp2-client',
  h2load: 'nghttp2-client',
  dig: 'bind9-dnsutils',
};

/** How long an apt-get waits for another one's lock (s), and how long one may run (ms). */
const LOCK_WAIT_S = 300;
const APT_TIMEOUT_MS = 600_000;

export function onPath(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    try {
      accessSync(path.join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      // not in this dir
    }
  }
  return false;
}

export function missingCommands(cmds: readonly string[] = Object.keys(COMMAND_PACKAGES)): string[] {
  return cmds.filter((c) => !onPath(c));
}

export function packagesFor(cmds: readonly string[]): string[] {
  return [...new Set(cmds.map((c) => COMMAND_PACKAGES[c] ?? c))];
}

/**
 * apt-get update + install, waiting for a lock another apt holds. Returns null when it worked, else
 * what failed (with apt's own message).
 */
export function installPackages(pkgs: readonly string[]): string | null {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const lock = ['-o', `DPkg::Lock::Timeout=${LOCK_WAIT_S}`];
  for (const args of [[...lock, 'update'], [...lock, 'install', '-y', '--no-install-recommends', ...pkgs]]) {
    try {
      execFileSync('apt-get', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: APT_TIMEOUT_MS, env });
    } catch (err) {
      const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
      return `apt-get ${args.slice(2).join(' ')} failed: ${stderr || (err as Error).message}`;
    }
  }
  return null;
}

/** The step before the tests: install whatever is missing, once, when this machine lets us. */
function main(): void {
  if (process.platform !== 'linux' || process.getuid?.() !== 0 || !onPath('apt-get')) return;
  const missing = missingCommands();
  if (missing.length === 0) return;
  const pkgs = packagesFor(missing);
  process.stderr.write(`sluice tests: installing ${pkgs.join(' ')} (missing: ${missing.join(', ')})\n`);
  const err = installPackages(pkgs);
  // Not fatal here: each test that needs a command checks again and fails with its own name.
  if (err !== null) process.stderr.write(`sluice tests: ${err}\n`);
}

if (require.main === module) main();
