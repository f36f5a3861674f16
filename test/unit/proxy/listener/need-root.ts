// Gate for tests that need root and host tools (ip netns, iptables, setpriv). As root, missing Debian packages
// are installed (a fresh CI machine may lack them). Not root: the test says LOUDLY why it skips, and when
// CI=true a skip is a failure, so a green CI run always means the test really ran.

import type { Test } from 'tap';
import { installPackages, onPath } from '../../../helpers/system-packages';

export interface Tool {
  /** Binary looked up on PATH. */
  readonly bin: string;
  /** Debian package that provides it. */
  readonly pkg: string;
}

function skipOrFail(t: Test, why: string): false {
  const banner = `\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n` +
    `!! SKIPPING ${t.name}: ${why}\n` +
    `!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!`;
  process.stderr.write(banner + '\n');
  if (process.env.CI === 'true') t.fail(`CI=true: this test must run, not skip: ${why}`);
  else t.plan(0, why); // plan 0 + reason = reported by tap as skipped, with the reason
  return false;
}

/**
 * true when the test can go on. Call at the start of the test and `return` when it gives false.
 * Installs missing packages with apt-get when root (normally done once before the run: helpers/system-packages.ts).
 */
export function needRoot(t: Test, tools: readonly Tool[]): boolean {
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  if (process.platform !== 'linux') return skipOrFail(t, `needs Linux network namespaces (platform is ${process.platform})`);
  if (uid !== 0) return skipOrFail(t, `needs root to create network namespaces and iptables rules (uid is ${uid}); run it with sudo`);
  const missing = tools.filter((tool) => !onPath(tool.bin));
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((tool) => tool.pkg))];
    if (!onPath('apt-get')) return skipOrFail(t, `missing ${missing.map((m) => m.bin).join(', ')} and no apt-get to install ${pkgs.join(' ')}`);
    t.comment(`installing ${pkgs.join(' ')} for ${missing.map((m) => m.bin).join(', ')}`);
    const err = installPackages(pkgs);
    if (err !== null) {
      t.fail(err);
      return false;
    }
    const still = tools.filter((tool) => !onPath(tool.bin));
    if (still.length > 0) {
      t.fail(`still missing after apt-get: ${still.map((m) => m.bin).join(', ')}`);
      return false;
    }
  }
  return true;
}

/** The tools the capture tests use, with their Debian packages. */
export const CAPTURE_TOOLS: readonly Tool[] = [
  { bin: 'ip', pkg: 'iproute2' },
  { bin: 'iptables-restore', pkg: 'iptables' },
  { bin: 'iptables-save', pkg: 'iptables' },
  { bin: 'ip6tables-save', pkg: 'iptables' },
  { bin: 'setpriv', pkg: 'util-linux' },
];
