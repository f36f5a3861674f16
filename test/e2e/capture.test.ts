// The capture path for real: sluice's iptables rules installed in a fresh network namespace, a listener on
// 15001 running as UID 1337 without privilege (as the sidecar does) that reads SO_ORIGINAL_DST through our
// addon, and root clients (the "app") dialling addresses in 198.18.0.0/15 that only exist in a second
// namespace of ours. Needs root; see need-root.ts for what happens without.
//
// Topology:  [sl-cap-PID: app + listener]  veth 198.18.0.1/24 <-> 198.18.0.9/24  [sl-up-PID: upstream :8080 :443]
// 198.18.0.9 must NOT be on the app namespace's lo: Istio's rules deliberately leave app->own-address traffic on
// lo alone (`-o lo -m owner ! --uid-owner 1337 -j RETURN`), so a local address would never be captured.

import t, { type Test } from 'tap';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CAPTURE_TOOLS, needRoot } from '../unit/proxy/listener/need-root';

const DIST = path.resolve(__dirname, '..', '..'); // dist/ (this file runs as dist/test/e2e/capture.test.js)
const NODE = process.execPath;
const PROXY_UID = 1337;
const APP_NS = `sl-cap-${process.pid}`;
const UP_NS = `sl-up-${process.pid}`;
const VETH_APP = `slca${process.pid % 100000}`;
const VETH_UP = `slcu${process.pid % 100000}`;
const APP_ADDR = '198.18.0.1';
const UPSTREAM_ADDR = '198.18.0.9';
const CMD_TIMEOUT_MS = 15_000;
const READY_TIMEOUT_MS = 10_000;

const AS_PROXY = ['setpriv', `--reuid=${PROXY_UID}`, `--regid=${PROXY_UID}`, '--clear-groups'];

function sh(args: readonly string[], input?: string): string {
  return execFileSync(args[0], args.slice(1), { encoding: 'utf8', timeout: CMD_TIMEOUT_MS, input, stdio: ['pipe', 'pipe', 'pipe'] });
}

function inNs(ns: string, args: readonly string[]): string {
  return sh(['ip', 'netns', 'exec', ns, ...args]);
}

// The scripts the namespaced processes run. Plain JS files in a temp dir readable by uid 1337.
const SCRIPTS: Record<string, string> = {
  'rules.js': `
const ipt = require(${JSON.stringify(path.join(DIST, 'proxy/iptables/command.js'))});
if (process.argv[2] === 'install-defaults') { ipt.installRules(ipt.defaultCaptureOptions()); process.exit(0); }
process.exit(ipt.runIptablesCommand(process.argv.slice(2)));
`,
  // The sidecar's capture listener in miniature: read the original destination, and (for 198.18/15 targets)
  // dial it as uid 1337, which the owner rule must leave alone. A cap on connections stops a capture loop.
  'listener.js': `
const net = require('node:net');
const { getOriginalDst, originalDstSupport } = require(${JSON.stringify(path.join(DIST, 'proxy/transport/original-dst.js'))});
const support = originalDstSupport();
if (!support.ok) { console.error(support.reason); process.exit(3); }
let served = 0;
net.createServer((sock) => {
  sock.on('error', () => {});
  if (++served > 50) { sock.end('{"error":"loop guard"}\\n'); return; }
  const reply = { orig: null, error: null, uid: process.getuid(), local: sock.localAddress + ':' + sock.localPort };
  try { reply.orig = getOriginalDst(sock); } catch (e) { reply.error = e.code + ': ' + e.message; }
  if (reply.orig === null || !reply.orig.address.startsWith('198.18.')) { sock.end(JSON.stringify(reply) + '\\n'); return; }
  let data = '';
  const up = net.connect(reply.orig.port, reply.orig.address);
  up.setTimeout(5000, () => up.destroy(new Error('upstream timeout')));
  up.on('data', (d) => { data += d; });
  up.on('error', (e) => { reply.upstreamError = e.code || e.message; sock.end(JSON.stringify(reply) + '\\n'); });
  up.on('end', () => { reply.upstream = data.trim(); sock.end(JSON.stringify(reply) + '\\n'); });
}).listen({ port: 15001, host: '::', ipv6Only: false }, () => console.log('ready'));
`,
  'upstream.js': `
const net = require('node:net');
let listening = 0;
for (const port of [8080, 443]) {
  net.createServer((sock) => { sock.on('error', () => {}); sock.end('upstream:' + port + '\\n'); })
    .listen(port, ${JSON.stringify(UPSTREAM_ADDR)}, () => { if (++listening === 2) console.log('ready'); });
}
`,
  'client.js': `
const net = require('node:net');
const [host, port] = [process.argv[2], Number(process.argv[3])];
let data = '';
const c = net.connect(port, host);
c.setTimeout(5000, () => { console.log('{"clientError":"timeout"}'); process.exit(1); });
c.on('data', (d) => { data += d; });
c.on('end', () => { process.stdout.write(data); process.exit(0); });
c.on('error', (e) => { console.log(JSON.stringify({ clientError: e.code })); process.exit(1); });
`,
};

function writeScripts(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-capture-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.chmodSync(dir, 0o755); // mkdtemp makes it 0700; uid 1337 must read the listener script
  for (const [name, text] of Object.entries(SCRIPTS)) fs.writeFileSync(path.join(dir, name), text, { mode: 0o644 });
  return dir;
}

/** Start a long-running process and wait (bounded) for its "ready" line. Killed in teardown. */
async function startReady(t: Test, args: readonly string[]): Promise<ChildProcess> {
  const child = spawn(args[0], args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')}: not ready after ${READY_TIMEOUT_MS} ms; stderr: ${stderr}`)), READY_TIMEOUT_MS);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready\n')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(' ')} exited with ${code} before ready; stderr: ${stderr}`));
    });
  });
  return child;
}

interface Reply {
  orig?: { family: number; address: string; port: number } | null;
  error?: string | null;
  uid?: number;
  upstream?: string;
  upstreamError?: string;
  clientError?: string;
}

/** Connect from the app namespace (as root unless asProxy) and parse the one-line reply. */
function dial(dir: string, host: string, port: number, asProxy = false): Reply | string {
  const prefix = asProxy ? AS_PROXY : [];
  let out: string;
  try {
    out = inNs(APP_NS, [...prefix, NODE, path.join(dir, 'client.js'), host, String(port)]).trim();
  } catch (err) {
    out = String((err as { stdout?: string }).stdout ?? '').trim() || (err as Error).message;
  }
  if (out.startsWith('{')) return JSON.parse(out) as Reply;
  return out;
}

t.test('sluice capture rules redirect app traffic to 15001 and SO_ORIGINAL_DST recovers the destination', async (t) => {
  if (!needRoot(t, CAPTURE_TOOLS)) return;

  // uid 1337 must be able to load dist/ and the addon (e.g. the checkout is not under a 0700 home).
  const support = path.join(DIST, 'proxy/transport/original-dst.js');
  try {
    sh([...AS_PROXY, NODE, '-e', `const m=require(${JSON.stringify(support)}); const s=m.originalDstSupport(); if(!s.ok){console.error(s.reason);process.exit(1)}`]);
  } catch (err) {
    t.fail(`uid ${PROXY_UID} cannot load ${support} and its addon: every directory from / to the checkout must be ` +
      `world-executable and the files world-readable (the sidecar runs unprivileged). ${(err as { stderr?: string }).stderr ?? err}`);
    return;
  }

  const dir = writeScripts(t);

  // Namespaces first, teardown right away so a failure anywhere below still removes them.
  sh(['ip', 'netns', 'add', APP_NS]);
  t.teardown(() => { try { sh(['ip', 'netns', 'del', APP_NS]); } catch { /* already gone */ } });
  sh(['ip', 'netns', 'add', UP_NS]);
  t.teardown(() => { try { sh(['ip', 'netns', 'del', UP_NS]); } catch { /* already gone */ } });
  inNs(APP_NS, ['ip', 'link', 'set', 'lo', 'up']);
  inNs(UP_NS, ['ip', 'link', 'set', 'lo', 'up']);
  inNs(APP_NS, ['ip', 'link', 'add', VETH_APP, 'type', 'veth', 'peer', 'name', VETH_UP]);
  inNs(APP_NS, ['ip', 'link', 'set', VETH_UP, 'netns', UP_NS]);
  inNs(APP_NS, ['ip', 'addr', 'add', `${APP_ADDR}/24`, 'dev', VETH_APP]);
  inNs(UP_NS, ['ip', 'addr', 'add', `${UPSTREAM_ADDR}/24`, 'dev', VETH_UP]);
  inNs(APP_NS, ['ip', 'link', 'set', VETH_APP, 'up']);
  inNs(UP_NS, ['ip', 'link', 'set', VETH_UP, 'up']);

  await startReady(t, ['ip', 'netns', 'exec', UP_NS, NODE, path.join(dir, 'upstream.js')]);

  t.same(dial(dir, UPSTREAM_ADDR, 8080), 'upstream:8080', 'before capture, the app reaches the upstream directly');

  // Install twice: the second run must clean the first, not stack a second copy.
  inNs(APP_NS, [NODE, path.join(dir, 'rules.js'), 'install-defaults']);
  inNs(APP_NS, [NODE, path.join(dir, 'rules.js'), 'install-defaults']);
  const saved = inNs(APP_NS, ['iptables-save', '-t', 'nat']);
  t.equal(saved.split('\n').filter((l) => l === '-A OUTPUT -j ISTIO_OUTPUT').length, 1, 'installRules is idempotent');
  t.match(saved, /-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001/);
  t.match(inNs(APP_NS, ['ip6tables-save', '-t', 'nat']), /-A ISTIO_OUTPUT -s ::6\/128 -o lo -j RETURN/, 'IPv6 rules too');

  // A test-only IPv6 redirect on ::1 (the only v6 address a test may use), to exercise the SOL_IPV6 path.
  // Not an ISTIO_ rule: --clean must leave it in place.
  const ip6Rule = ['-p', 'tcp', '-d', '::1/128', '--dport', '18080', '-m', 'owner', '!', '--uid-owner', String(PROXY_UID), '-j', 'REDIRECT', '--to-ports', '15001'];
  inNs(APP_NS, ['ip6tables', '-t', 'nat', '-I', 'OUTPUT', '1', ...ip6Rule]);

  await startReady(t, ['ip', 'netns', 'exec', APP_NS, ...AS_PROXY, NODE, path.join(dir, 'listener.js')]);

  // local ::ffff:127.0.0.1:15001: REDIRECT rewrote the destination to the listener, which accepted it on a
  // dual-stack socket as IPv4-mapped; SOL_IP still answers on that AF_INET6 socket.
  await t.test('app -> 198.18.0.9:8080 is captured; the listener sees the original destination', async (t) => {
    const r = dial(dir, UPSTREAM_ADDR, 8080);
    t.same(r, { orig: { family: 4, address: UPSTREAM_ADDR, port: 8080 }, error: null, uid: PROXY_UID, local: '::ffff:127.0.0.1:15001', upstream: 'upstream:8080' }, JSON.stringify(r));
  });

  await t.test('app -> 198.18.0.9:443 is captured too', async (t) => {
    const r = dial(dir, UPSTREAM_ADDR, 443);
    t.same(r, { orig: { family: 4, address: UPSTREAM_ADDR, port: 443 }, error: null, uid: PROXY_UID, local: '::ffff:127.0.0.1:15001', upstream: 'upstream:443' }, JSON.stringify(r));
  });

  await t.test('a connection made by uid 1337 is not captured (owner match): it reaches the upstream directly', async (t) => {
    t.same(dial(dir, UPSTREAM_ADDR, 8080, true), 'upstream:8080');
  });

  await t.test('a connection made straight to 127.0.0.1:15001 is not redirected: getOriginalDst is null', async (t) => {
    const r = dial(dir, '127.0.0.1', 15001) as Reply;
    t.equal(r.orig, null, JSON.stringify(r));
    t.equal(r.error, null);
  });

  await t.test('IPv6: a redirected [::1]:18080 reports family 6 through SOL_IPV6', async (t) => {
    const r = dial(dir, '::1', 18080) as Reply;
    t.same(r.orig, { family: 6, address: '::1', port: 18080 }, JSON.stringify(r));
  });

  await t.test('--clean removes the ISTIO_ chains and jumps, and nothing else', async (t) => {
    const out = inNs(APP_NS, [NODE, path.join(dir, 'rules.js'), '--clean']);
    t.match(out, /removed the ISTIO_\* capture chains/);
    const v4 = inNs(APP_NS, ['iptables-save', '-t', 'nat']);
    const v6 = inNs(APP_NS, ['ip6tables-save', '-t', 'nat']);
    t.notMatch(v4, /ISTIO_/, 'no ISTIO_ in iptables-save');
    t.notMatch(v6, /ISTIO_/, 'no ISTIO_ in ip6tables-save');
    t.match(v6, /-A OUTPUT -d ::1\/128 -p tcp -m tcp --dport 18080 -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 15001/, 'the foreign rule survives');
    t.same(dial(dir, UPSTREAM_ADDR, 8080), 'upstream:8080', 'after clean the app reaches the upstream directly again');
    const again = inNs(APP_NS, [NODE, path.join(dir, 'rules.js'), '--clean']);
    t.match(again, /removed/, 'cleaning a clean table is fine');
  });
});
