// The `sluice` command as a user runs it: a real child process, real files, exit codes and output.

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parseDurationMs, parseFlags, parseLabels, runOptionsFrom } from '../../../proxy/cli';

const ROOT = path.join(__dirname, '..', '..', '..', '..');
const CLI = path.join(ROOT, 'dist', 'proxy', 'cli.js');

function sluice(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, NODE_OPTIONS: '', ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

t.test('--help after a command prints the usage, exit 0', async (t) => {
  for (const cmd of ['run', 'validate', 'explain']) {
    const r = await sluice([cmd, '--help']);
    t.equal(r.code, 0, `${cmd} --help: exit 0`);
    t.match(r.stdout, /^usage:\n {2}sluice run /, `${cmd} --help: the usage`);
    t.equal(r.stderr, '', `${cmd} --help: no error`);
  }
});

t.test('validate accepts every sample scenario folder', async (t) => {
  const samples = fs.readdirSync(path.join(ROOT, 'config', 'samples')).filter((d) => /^s\d/.test(d));
  t.ok(samples.length >= 10, 'one folder per seed scenario');
  for (const s of samples) {
    const r = await sluice(['validate', '--config', path.join('config', 'samples', s)]);
    t.equal(r.code, 0, `${s}: exit 0 (${r.stdout.trim()})`);
    t.match(r.stdout, /: valid\n$/, `${s}: says valid`);
  }
});

t.test('validate rejects a broken config with the exact message, exit 1', async (t) => {
  const r = await sluice(['validate', '--config', 'test/fixtures/broken/api-version.yaml']);
  t.equal(r.code, 1);
  t.equal(r.stdout, 'test/fixtures/broken/api-version.yaml:1: ServiceEntry/cnn: apiVersion: unsupported apiVersion "networking.istio.io/v2"; expected one of networking.istio.io/v1alpha3, networking.istio.io/v1beta1, networking.istio.io/v1\n');
});

t.test('run refuses an invalid config with every problem listed, exit 1', async (t) => {
  const r = await sluice(['run', '--role', 'gateway', '--config', 'test/fixtures/broken/api-version.yaml', '--admin', '127.0.0.1:0']);
  t.equal(r.code, 1);
  t.match(r.stderr, /invalid config:\n {2}test\/fixtures\/broken\/api-version\.yaml:1: ServiceEntry\/cnn: apiVersion: unsupported/);
});

t.test('usage errors exit 2', async (t) => {
  t.equal((await sluice(['run', '--role', 'nope', '--config', 'x'])).code, 2);
  t.equal((await sluice(['frobnicate'])).code, 2);
  t.throws(() => parseFlags(['--bogus', '1'], ['config']), { code: 'CLI_ERR_USAGE', message: 'unknown flag --bogus' });
  t.throws(() => parseLabels('novalue'), { code: 'CLI_ERR_USAGE' });
});

t.test('flags fall back to SLUICE_<FLAG> environment variables', async (t) => {
  const flags = parseFlags(['--config', 'a.yaml'], ['role', 'config', 'outbound-port', 'labels', 'admin'], {
    SLUICE_ROLE: 'gateway', SLUICE_OUTBOUND_PORT: '16001', SLUICE_LABELS: 'istio=egressgateway,app=x', SLUICE_ADMIN: '0.0.0.0:15100',
  });
  const o = runOptionsFrom(flags);
  t.equal(o.role, 'gateway');
  t.equal(o.outboundPort, 16001);
  t.same(o.labels, { istio: 'egressgateway', app: 'x' });
  t.same(o.admin, { host: '0.0.0.0', port: 15100 });
  t.same(o.configPaths, ['a.yaml'], 'a flag wins over the environment');
});

t.test('npm start (sluice demo --once) prints the seed S2 path, the log lines and the counters', async (t) => {
  const r = await sluice(['demo', '--once']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout.match(/-> 301 location: https:\/\/edition\.cnn\.com\/politics/g)?.length, 3, 'three requests answered 301');
  t.match(r.stdout, /gateway access log:\n {2}\[.*\] "GET \/politics HTTP\/1\.1" 301 - via_upstream .* outbound\|80\|\|edition\.cnn\.com /);
  t.match(r.stdout, /\ncluster\.outbound\|80\|\|edition\.cnn\.com\.upstream_cx_total: 1\n/, 'gateway: one pooled upstream connection');
  t.match(r.stdout, /\ncluster\.outbound\|80\|cnn\|istio-egressgateway\.istio-system\.svc\.cluster\.local\.upstream_cx_total: 1\n/, 'sidecar: one pooled connection to the gateway');
});

t.test('--drain-duration takes Istio-style durations', async (t) => {
  t.equal(parseDurationMs('5s', 'drain-duration'), 5000);
  t.equal(parseDurationMs('250ms', 'drain-duration'), 250);
  t.equal(parseDurationMs('1m', 'drain-duration'), 60_000);
  t.equal(parseDurationMs('2.5', 'drain-duration'), 2500, 'a bare number is seconds');
  t.throws(() => parseDurationMs('5 parsecs', 'drain-duration'), { code: 'CLI_ERR_USAGE' });
  t.throws(() => parseDurationMs('2h', 'drain-duration'), { code: 'CLI_ERR_USAGE' });
  const o = runOptionsFrom(parseFlags(['--role', 'gateway', '--config', 'x'], ['role', 'config']));
  t.equal(o.drainDurationMs, 5000, "default: Istio's terminationDrainDuration, 5 s");
});
