// Can this machine run the e2e tests? Network namespaces and iptables need root; the clients and
// plumbing are Debian packages we install when missing; the proxy runs as uid 1337 and must be able
// to read the compiled project.
//
// Not root: the tests are skipped LOUDLY, except in CI (CI=true), where a skip would hide that the
// scenarios never ran, so it fails instead.

import path from 'node:path';
import { installPackages, missingCommands, packagesFor } from '../../helpers/system-packages';
import { PROJECT_ROOT } from './paths';
import { run } from './run';

/** Structural subset of tap's Test that we use (tap.Test satisfies it). */
export interface PrereqTest {
  // tap 21's skip() makes a skipped subtest and wants a callback; with an empty one it reports `# SKIP message`.
  skip(message: string, cb: () => void): unknown;
  fail(message: string): unknown;
  comment(...message: unknown[]): unknown;
}

export const PROXY_UID = 1337;

// Commands the harness and the e2e tests run (their packages: helpers/system-packages.ts).
const COMMANDS = ['ip', 'iptables', 'iptables-restore', 'nft', 'curl', 'openssl', 'nc', 'setpriv'];

let cached: Promise<string | null> | null = null;

function installMissing(t: PrereqTest, missing: string[]): string | null {
  const pkgs = packagesFor(missing);
  t.comment(`e2e: installing missing commands (${missing.join(', ')}): apt-get install -y ${pkgs.join(' ')}`);
  const err = installPackages(pkgs);
  if (err !== null) return err;
  const still = missingCommands(COMMANDS);
  return still.length === 0 ? null : `still missing after apt-get install: ${still.join(', ')}`;
}

/** Root in a container may still lack CAP_SYS_ADMIN/CAP_NET_ADMIN: try the real thing once. */
async function canMakeNamespaces(): Promise<string | null> {
  const probe = `sluice-e2e-${process.pid}-probe`;
  const add = await run('ip', ['netns', 'add', probe]);
  if (add.code !== 0) return `cannot create network namespaces (ip netns add: ${add.stderr.trim()})`;
  await run('ip', ['netns', 'del', probe]);
  return null;
}

/**
 * The paths uid 1337 needs, checked as uid 1337 itself (so ACLs and group bits count as the kernel
 * sees them): every ancestor directory must be traversable, dist/ and node_modules/ readable.
 */
async function proxyUidCanRead(): Promise<string | null> {
  const paths: { p: string; mode: 'x' | 'r' }[] = [];
  for (let dir = PROJECT_ROOT; ; dir = path.dirname(dir)) {
    paths.unshift({ p: dir, mode: 'x' });
    if (dir === path.dirname(dir)) break;
  }
  for (const sub of ['dist', 'node_modules']) {
    paths.push({ p: path.join(PROJECT_ROOT, sub), mode: 'x' }, { p: path.join(PROJECT_ROOT, sub), mode: 'r' });
  }
  paths.push({ p: process.execPath, mode: 'x' });
  // One process for all checks; prints the first path uid 1337 cannot use.
  const script =
    "const fs=require('fs');for(const [p,m] of JSON.parse(process.argv[1])){" +
    "try{fs.accessSync(p,m==='r'?fs.constants.R_OK:fs.constants.X_OK)}catch(e){console.log(m+' '+p);process.exit(3)}}";
  const r = await run('setpriv', [
    `--reuid=${PROXY_UID}`, `--regid=${PROXY_UID}`, '--clear-groups', '--',
    process.execPath, '-e', script, JSON.stringify(paths.map((x) => [x.p, x.mode])),
  ], { env: { HOME: '/' } });
  if (r.code === 0) return null;
  const line = r.stdout.trim();
  if (line) {
    const [mode, ...rest] = line.split(' ');
    const p = rest.join(' ');
    return mode === 'x'
      ? `uid ${PROXY_UID} (the proxy's user) cannot traverse ${p}: the sidecar could not load the project (fix: chmod o+x ${p}, or put the checkout under a world-readable path)`
      : `uid ${PROXY_UID} (the proxy's user) cannot read ${p} (fix: chmod -R o+rX ${p})`;
  }
  return `could not run node as uid ${PROXY_UID} (setpriv exit ${r.code}): ${r.stderr.trim()}`;
}

async function check(t: PrereqTest): Promise<string | null> {
  const missing = missingCommands(COMMANDS);
  if (missing.length > 0) {
    const err = installMissing(t, missing);
    if (err) return err;
  }
  return (await canMakeNamespaces()) ?? (await proxyUidCanRead());
}

/**
 * True when the e2e tests can run here. Otherwise: not root -> skip with a loud message (fail when
 * CI=true); root but something broken -> fail with what exactly is wrong. The checks run once per process.
 */
export async function requireRoot(t: PrereqTest): Promise<boolean> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    const message = 'e2e SKIPPED: needs root for network namespaces and iptables';
    if (process.env.CI === 'true') {
      t.fail(`${message} (CI=true: failing instead of skipping, the seed scenarios would not be tested)`);
    } else {
      t.comment('#'.repeat(72));
      t.comment(`### ${message}`);
      t.comment('#'.repeat(72));
      t.skip(message, () => {});
    }
    return false;
  }
  if (!cached) cached = check(t);
  const problem = await cached;
  if (problem) {
    t.fail(`e2e cannot run: ${problem}`);
    return false;
  }
  return true;
}
