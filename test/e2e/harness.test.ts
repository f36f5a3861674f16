// Self-test of the e2e harness, on real namespaces: the S5 shape (an app whose only way out is a
// gateway that does not forward), per-host name resolution, HTTPS verified with the test CA, the TCP
// echo stand-in, uid 1337, and that destroy() leaves nothing behind.

import t from 'tap';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { requireRoot } from './harness/prereqs';
import { Topology, NETNS_PREFIX } from './harness/topology';
import { makeCa, makeLeaf, makeWorkloadCerts } from './harness/certs';
import { distFile, serverArgv } from './harness/paths';
import { ProcHandle } from './harness/proc-handle';
import { run } from './harness/run';
import { DEFAULT_POLITICS_BODY_SIZE, makePoliticsBody, sha256Hex } from './servers/politics-body';

const EXTERNAL_IP = '198.18.2.10';
const CURL_EXIT_TIMEOUT = 28;
const CURL_EXIT_BAD_CERT = 60;

t.test('harness builds hosts, routes like S5, serves HTTP/HTTPS/TCP and cleans up', async (t) => {
  if (!(await requireRoot(t))) return;

  const dir = mkdtempSync(path.join(os.tmpdir(), 'sluice-e2e-harness-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await makeCa(dir, 'test-root');
  const cnn = await makeLeaf(dir, ca, { cn: 'edition.cnn.com', dnsNames: ['edition.cnn.com'] });

  const topo = await Topology.create(
    t,
    [
      { name: 'mesh', cidr: '198.18.1.0/24' },
      { name: 'internet', cidr: '198.18.2.0/24' },
    ],
    [
      { name: 'app', nets: [{ net: 'mesh', address: '198.18.1.2' }], defaultVia: '198.18.1.1', hosts: { 'edition.cnn.com': EXTERNAL_IP } },
      {
        name: 'gateway',
        nets: [
          { net: 'mesh', address: '198.18.1.1' },
          { net: 'internet', address: '198.18.2.1' },
        ],
        forwarding: false,
        hosts: { 'edition.cnn.com': EXTERNAL_IP },
      },
      { name: 'external', nets: [{ net: 'internet', address: EXTERNAL_IP }], routes: [{ to: '198.18.1.0/24', via: '198.18.2.1' }] },
    ],
  );
  const ours = topo.ns('app').slice(0, topo.ns('app').length - 'app'.length);

  // As uid 1337 on :80 and :443: proves unprivilegedPortStart=0 and that 1337 can run project files.
  const external = topo.spawn('external', serverArgv('external', ['--cert', cnn.certFile, '--key', cnn.keyFile]), { uid: 1337, name: 'external' });
  await external.waitForLine(/^READY$/, 10_000);
  await external.waitForPort(80, 2_000);
  await external.waitForPort(443, 2_000);

  t.test('addresses and exec as uid', async (t) => {
    t.equal(topo.ip('gateway', 'internet'), '198.18.2.1');
    t.equal(topo.ip('app'), '198.18.1.2');
    const addr = await topo.exec('gateway', ['ip', '-4', '-o', 'addr', 'show', 'dev', topo.ifname('gateway', 'internet')]);
    t.match(addr.stdout, /inet 198\.18\.2\.1\/24/);
    const id = await topo.exec('app', ['id', '-u'], { uid: 1337 });
    t.equal(id.stdout.trim(), '1337');
    const ps = await run('ps', ['-o', 'uid=', '-p', String(external.pid)]);
    t.equal(ps.stdout.trim(), '1337', 'the external stand-in runs as uid 1337');
    const env = await topo.exec('app', [process.execPath, '-p', 'process.env.NODE_OPTIONS + " " + process.env.TAP'], { env: { TAP: 'kept' } });
    t.equal(env.stdout.trim(), 'undefined kept', "tap's NODE_OPTIONS hooks do not leak into the system under test; explicit env does");
  });

  t.test('names resolve per host through /etc/netns/<ns>/hosts', async (t) => {
    const inApp = await topo.exec('app', ['getent', 'hosts', 'edition.cnn.com']);
    t.match(inApp.stdout, /^198\.18\.2\.10\s+edition\.cnn\.com/);
    const inExternal = await topo.exec('external', ['getent', 'hosts', 'edition.cnn.com']);
    t.not(inExternal.code, 0, 'external has no such entry');
    // Node's dns.lookup (getaddrinfo) sees the same per-host file.
    const node = await topo.exec('app', [process.execPath, '-e', "require('dns').lookup('edition.cnn.com',4,(e,a)=>console.log(e?e.code:a))"]);
    t.equal(node.stdout.trim(), EXTERNAL_IP);
    const localhost = await topo.exec('external', ['getent', 'hosts', 'localhost']);
    t.match(localhost.stdout, /^127\.0\.0\.1\s+localhost/);
  });

  t.test('S5 shape: the app cannot reach external while the gateway does not forward', async (t) => {
    const before = external.mark();
    const r = await topo.exec('app', ['curl', '-sS', '-o', '/dev/null', '--connect-timeout', '2', 'http://edition.cnn.com/politics']);
    t.equal(r.code, CURL_EXIT_TIMEOUT, `curl timed out connecting (stderr: ${r.stderr.trim()})`);
    t.same(external.linesMatching(/^GET /, before), [], 'no request reached external');
    // The gateway itself sits on the internet net and reaches it.
    const g = await topo.exec('gateway', ['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', 'http://edition.cnn.com/politics']);
    t.equal(g.stdout, '301');
  });

  t.test('with forwarding on the gateway the app gets the 301', async (t) => {
    await topo.setForwarding('gateway', true);
    const before = external.mark();
    const r = await topo.exec('app', ['curl', '-sS', '-D', '-', '-o', '/dev/null', '--connect-timeout', '2', 'http://edition.cnn.com/politics']);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^HTTP\/1\.1 301/);
    t.match(r.stdout, /location: https:\/\/edition\.cnn\.com\/politics\r\n/i);
    const line = await external.waitForLine(/^GET \/politics /, 2_000, before);
    t.match(line, /host=edition\.cnn\.com from=198\.18\.1\.2:\d+ scheme=http$/, 'routed, not NATed: external sees the app address');
    await topo.setForwarding('gateway', false);
    const again = await topo.exec('app', ['curl', '-sS', '-o', '/dev/null', '--connect-timeout', '1', 'http://edition.cnn.com/politics']);
    t.equal(again.code, CURL_EXIT_TIMEOUT, 'forwarding off again cuts the app off');
  });

  t.test('external serves HTTPS verified with the test CA', async (t) => {
    const file = path.join(dir, 'politics.html');
    const r = await topo.exec('gateway', ['curl', '-sS', '--cacert', ca.certFile, '-o', file, '-D', '-', 'https://edition.cnn.com/politics']);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^HTTP\/1\.1 200/);
    t.match(r.stdout, /content-type: text\/html/);
    const got = readFileSync(file);
    t.equal(got.length, DEFAULT_POLITICS_BODY_SIZE);
    t.equal(sha256Hex(got), sha256Hex(makePoliticsBody()));
    const unverified = await topo.exec('gateway', ['curl', '-sS', '-o', '/dev/null', 'https://edition.cnn.com/politics']);
    t.equal(unverified.code, CURL_EXIT_BAD_CERT, 'without the test CA curl rejects the certificate');
    const other = await topo.exec('gateway', ['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', ca.certFile, 'https://edition.cnn.com/sports']);
    t.equal(other.stdout, '404');
  });

  t.test('tcp-echo greets with its version and echoes lines', async (t) => {
    const echo = topo.spawn('external', serverArgv('tcp-echo', ['--port', '3333', '--version', 'v2']), { name: 'tcp-echo' });
    await echo.waitForLine(/^READY$/, 10_000);
    const r = await topo.exec('gateway', ['nc', '-N', '-w', '2', EXTERNAL_IP, '3333'], { input: 'hello, app2\ncontinue..\n' });
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^Welcome, you are connected to node .*, version v2\.\n/);
    t.match(r.stdout, /hello, app2\ncontinue\.\.\n$/);
    await echo.waitForLine(/^Received: continue\.\. from=198\.18\.2\.1:\d+$/, 2_000);
    const exit = await echo.stop();
    t.equal(exit.code, 0, 'stops on SIGTERM');
  });

  t.test('workload certs have the Istio layout and the SPIFFE SAN', async (t) => {
    const id = 'spiffe://cluster.local/ns/istio-system/sa/istio-egressgateway-service-account';
    const w = await makeWorkloadCerts(path.join(dir, 'gw-certs'), ca, id);
    for (const f of ['cert-chain.pem', 'key.pem', 'root-cert.pem']) t.ok(existsSync(path.join(w.dir, f)), f);
    const text = await run('openssl', ['x509', '-in', w.certChainFile, '-noout', '-text']);
    t.match(text.stdout, `URI:${id}`);
    const verify = await run('openssl', ['verify', '-CAfile', w.rootCertFile, w.certChainFile]);
    t.equal(verify.code, 0, verify.stderr);
    const readable = await run('setpriv', ['--reuid=1337', '--regid=1337', '--clear-groups', '--', 'cat', w.keyFile]);
    t.equal(readable.code, 0, 'uid 1337 can read the key');
  });

  t.test('a process that never prints the line fails the wait with its output', async (t) => {
    const p = topo.spawn('app', ['sh', '-c', 'echo starting; exit 3'], { name: 'quitter' });
    await t.rejects(p.waitForLine(/^READY$/, 5_000), /quitter .*exited \(code 3\).*starting/s);
  });

  t.test('destroy removes processes, namespaces and /etc/netns dirs', async (t) => {
    const sleeper = topo.spawn('app', ['sleep', '60'], { name: 'sleeper' });
    await topo.destroy();
    await topo.destroy(); // idempotent
    t.not(sleeper.exitStatus, null, 'spawned process has exited');
    t.not(external.exitStatus, null, 'external stand-in has exited');
    const list = await run('ip', ['netns', 'list']);
    t.notMatch(list.stdout, ours, `no namespace named ${ours}* remains`);
    t.notOk(existsSync(`/etc/netns/${topo.ns('app')}`), '/etc/netns dir removed');
    t.notOk(existsSync(`/etc/netns/${topo.bridgeNs}`));
    t.throws(() => topo.spawn('app', ['true']), /destroyed/);
  });

  t.ok(ours.startsWith(`${NETNS_PREFIX}${process.pid}-`));
});

// The same cleanup must happen when the test process dies: by a signal (exit handlers run) or by
// SIGKILL (nothing runs; the next Topology.create sweeps namespaces whose creator is dead).
t.test('cleanup survives a killed test process', async (t) => {
  if (!(await requireRoot(t))) return;
  const startChild = async (): Promise<{ child: ProcHandle; namespaces: string[]; sleeperPid: number }> => {
    const child = new ProcHandle('self-test-child', process.execPath, [distFile('test/e2e/harness/self-test-child.js')], process.env);
    t.teardown(() => child.stop());
    await child.waitForLine(/^READY$/, 10_000);
    const namespaces = child.linesMatching(/^NS /).map((l) => l.slice(3));
    const sleeperPid = Number(child.linesMatching(/^PID /)[0]?.slice(4));
    return { child, namespaces, sleeperPid };
  };
  const netnsList = async (): Promise<string> => (await run('ip', ['netns', 'list'])).stdout;
  // Alive = exists and is not a zombie: an orphan killed by SIGKILL stays a zombie until whoever
  // adopted it reaps it, which is not up to us.
  const alive = (pid: number): boolean => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false;
    }
  };

  t.test('SIGTERM: the exit handlers remove namespaces and processes', async (t) => {
    const { child, namespaces, sleeperPid } = await startChild();
    t.equal(namespaces.length, 2);
    for (const ns of namespaces) t.match(await netnsList(), ns, `${ns} exists while the child runs`);
    child.kill('SIGTERM');
    const exit = await child.exited;
    t.equal(exit.signal, 'SIGTERM', 'the child still dies by SIGTERM after cleaning up');
    const list = await netnsList();
    for (const ns of namespaces) t.notMatch(list, ns, `${ns} removed`);
    t.notOk(existsSync(`/etc/netns/${namespaces[0]}`), '/etc/netns dir removed');
    t.notOk(alive(sleeperPid), 'the process inside was killed');
  });

  t.test('SIGKILL: the next create sweeps what the dead run left', async (t) => {
    const { child, namespaces, sleeperPid } = await startChild();
    child.kill('SIGKILL');
    await child.exited;
    t.match(await netnsList(), namespaces[0] as string, 'SIGKILL left the namespace behind');
    t.ok(alive(sleeperPid), 'and the process inside it');
    const topo = await Topology.create(t, [{ name: 'lan', cidr: '198.18.9.0/24' }], [{ name: 'solo', nets: [{ net: 'lan', address: '198.18.9.2' }] }]);
    const list = await netnsList();
    for (const ns of namespaces) t.notMatch(list, ns, `${ns} swept`);
    t.notOk(existsSync(`/etc/netns/${namespaces[0]}`), '/etc/netns dir swept');
    // Killed by SIGKILL; give the kernel a bounded moment to reap it (it is not our child).
    for (let i = 0; i < 50 && alive(sleeperPid); i++) await new Promise((r) => setTimeout(r, 20));
    t.notOk(alive(sleeperPid), 'the orphaned process was killed');
    await topo.destroy();
  });
});
