// The short, in-suite part of `npm run image:test` (test/image/image-test.sh, which builds and runs
// the whole image and takes ~20 min here): the two things the Dockerfile's build stage relies on,
// run for real with this machine's Node, npm and compiler, in a copy of the package.
//   - `npm run build:addon` with npm_config_nodedir pointing at Node's own headers (the base image
//     ships them in /usr/local/include/node; this host's Node has them under its prefix) builds
//     the addon without any download: node-gyp's download URL points at a closed loopback port.
//   - When the addon cannot build, `npm run build:addon` fails (exit != 0, node-gyp's reason
//     printed), so the image build stops; `prepare` (a plain `npm install`) warns and goes on.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';

const ROOT = path.join(__dirname, '..', '..', '..');
const NATIVE = 'proxy/transport/native';
/** The prefix whose include/node holds this Node's headers (/usr for Debian's nodejs, /usr/local in the node image). */
const NODE_PREFIX = path.join(path.dirname(fs.realpathSync(process.execPath)), '..');
// No network for node-gyp: a download attempt hits a port nothing listens on and fails at once.
const OFFLINE = { npm_config_disturl: 'http://127.0.0.1:9/', NODEJS_ORG_MIRROR: 'http://127.0.0.1:9/', npm_config_offline: 'true' };

function copyPackage(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-addon-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
  fs.mkdirSync(path.join(dir, NATIVE), { recursive: true });
  for (const f of ['binding.gyp', 'original_dst.c']) fs.copyFileSync(path.join(ROOT, NATIVE, f), path.join(dir, NATIVE, f));
  return dir;
}

function npmRun(dir: string, script: string, env: Record<string, string>): { status: number | null; output: string } {
  // The copy has no tsc; `prepare` is checked through its addon half only (see below).
  const r = spawnSync('npm', ['run', script], { cwd: dir, env: { ...process.env, ...OFFLINE, ...env, HOME: dir }, encoding: 'utf8', timeout: 240_000 });
  return { status: r.status, output: (r.stdout ?? '') + (r.stderr ?? '') };
}

t.test('build:addon with npm_config_nodedir builds offline, and the addon loads', { skip: fs.existsSync(path.join(NODE_PREFIX, 'include', 'node', 'common.gypi')) ? false : `no Node headers under ${NODE_PREFIX}/include/node` }, async (t) => {
  const dir = copyPackage(t);
  const r = npmRun(dir, 'build:addon', { npm_config_nodedir: NODE_PREFIX });
  t.equal(r.status, 0, r.output.slice(-2000));
  const addon = path.join(dir, NATIVE, 'build', 'Release', 'original_dst.node');
  t.ok(fs.existsSync(addon), 'original_dst.node built');
  const m = require(addon) as Record<string, unknown>;
  t.ok(Object.keys(m).length > 0, `it loads and exports ${Object.keys(m).join(', ')}`);
});

t.test('a failed addon build is loud: build:addon exits non-zero with the reason', async (t) => {
  const dir = copyPackage(t);
  const r = npmRun(dir, 'build:addon', { npm_config_nodedir: path.join(dir, 'no-headers-here') });
  t.not(r.status, 0, 'npm run build:addon failed (the image build stops here)');
  t.match(r.output, /gyp ERR!/, "node-gyp's error is shown, not hidden");
  t.notOk(fs.existsSync(path.join(dir, NATIVE, 'build', 'Release', 'original_dst.node')));
});

t.test("prepare's addon step warns and goes on, so npm install works without a compiler", async (t) => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const prepare = pkg.scripts['prepare']!;
  t.match(prepare, /^tsc -p \. && \(npm run build:addon \|\| echo '[^']*WARNING[^']*' >&2\)$/, 'prepare = tsc, then build:addon or a warning');
  // Run prepare's addon half as npm would, with the headers missing.
  const dir = copyPackage(t);
  const pkgCopy = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  pkgCopy.scripts['prepare-addon'] = prepare.replace(/^tsc -p \. && /, '');
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(pkgCopy));
  const r = npmRun(dir, 'prepare-addon', { npm_config_nodedir: path.join(dir, 'no-headers-here') });
  t.equal(r.status, 0, 'install goes on');
  t.match(r.output, /gyp ERR![\s\S]*sluice: WARNING: the SO_ORIGINAL_DST addon did not build/, "node-gyp's reason, then the warning");
});

t.test('image-test.sh --dry-run checks the Dockerfile and its tools without building', { skip: process.getuid?.() === 0 ? false : 'needs root' }, async (t) => {
  const r = spawnSync('bash', [path.join(ROOT, 'test', 'image', 'image-test.sh'), '--dry-run'], { encoding: 'utf8', timeout: 30_000 });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /image-test: dry run OK/);
  t.match(r.stdout, /stand-in base docker\.io\/library\/node:24-bookworm-slim: .*a reconstruction/);
});
