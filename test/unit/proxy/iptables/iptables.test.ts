// Rule text, flag parsing and the clean script, without root. Installing them for real, and checking that they
// capture, is test/e2e/capture.test.ts.

import t from 'tap';
import {
  buildCleanRules,
  buildIp6Rules,
  buildRules,
  CaptureErrorCode,
  defaultCaptureOptions,
  parseIptablesArgs,
  runIptablesCommand,
  type CaptureOptions,
} from '../../../../proxy/iptables/command';

// Istio's golden output for the injected defaults (`-p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x "" -b '*'
// -d 15090,15021,15020`): tools/istio-iptables/pkg/capture/testdata/inbound-ports-wildcard.golden (which runs
// without -i, so we append Istio's `-A ISTIO_OUTPUT -j ISTIO_REDIRECT` for -i '*', run.go
// handleOutboundIncludeRules) plus the -d exclusions as handleInboundPortsInclude emits them.
const ISTIO_DEFAULT_V4 = `*nat
-N ISTIO_INBOUND
-N ISTIO_REDIRECT
-N ISTIO_IN_REDIRECT
-N ISTIO_OUTPUT
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
COMMIT
`;

// sluice's defaults: Istio's, plus the loopback-VIP capture (rules.ts, rule 4): the app's connections to
// 127.0.0.0/8 other than 127.0.0.1 go to the outbound listener, as Istio 1.1's `-o lo ! -d 127.0.0.1` did.
const SLUICE_DEFAULT_V4 = ISTIO_DEFAULT_V4
  .replace('-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN\n', '-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN\n-A ISTIO_OUTPUT -o lo -d 127.0.0.1/32 -j RETURN\n')
  .replace('-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN\n', '-A ISTIO_OUTPUT -o lo -d 127.0.0.0/8 -p tcp -m owner ! --uid-owner 1337 -j ISTIO_REDIRECT\n-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN\n')
  .replace('-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN\n', '-A ISTIO_OUTPUT -o lo -d 127.0.0.0/8 -p tcp -m owner ! --gid-owner 1337 -j ISTIO_REDIRECT\n-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN\n');

function withOptions(patch: Partial<CaptureOptions>): CaptureOptions {
  return { ...defaultCaptureOptions(), ...patch };
}

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}

t.test('defaults produce Istio\'s injected REDIRECT rules, plus the loopback VIPs', async (t) => {
  t.equal(buildRules(defaultCaptureOptions()), SLUICE_DEFAULT_V4);
  t.not(SLUICE_DEFAULT_V4, ISTIO_DEFAULT_V4, 'the VIP lines were inserted');
});

t.test('--redirect-dns: the app\'s UDP and TCP 53 to 15053, the proxy\'s own queries left alone', async (t) => {
  const parsed = parseIptablesArgs(['--redirect-dns'], {}).options;
  const rules = lines(buildRules(parsed));
  const at = (r: string) => rules.indexOf(r);
  for (const proto of ['udp', 'tcp']) {
    const redirect = at(`-A ISTIO_OUTPUT -p ${proto} --dport 53 -j REDIRECT --to-ports 15053`);
    t.ok(redirect > 0, `${proto} redirected`);
    t.ok(at(`-A ISTIO_OUTPUT -p ${proto} --dport 53 -m owner --uid-owner 1337 -j RETURN`) < redirect && at(`-A ISTIO_OUTPUT -p ${proto} --dport 53 -m owner --gid-owner 1337 -j RETURN`) < redirect, `${proto}: the proxy's own queries RETURN first`);
    t.ok(redirect < at('-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN'), `${proto}: before app-on-lo RETURN (a stub resolver on 127.0.0.53)`);
  }
  t.notOk(lines(buildRules(defaultCaptureOptions())).some((r) => r.includes('--dport 53')), 'off by default');
  t.equal(parseIptablesArgs(['--redirect-dns', '--dns-port', '16053'], {}).options.dnsPort, 16053);
});

t.test('IPv6 rules swap in ::6 and ::1, as Istio\'s ipv6 goldens do', async (t) => {
  const expected = ISTIO_DEFAULT_V4.replace('127.0.0.6/32', '::6/128').replace(/127\.0\.0\.1\/32/g, '::1/128');
  t.equal(buildIp6Rules(defaultCaptureOptions()), expected);
});

t.test('excluded ports and CIDRs RETURN before anything is redirected', async (t) => {
  const rules = lines(buildRules(withOptions({ excludeOutboundPorts: [22, 3306], excludeOutboundCidrs: ['10.0.0.0/8', '198.18.5.0/24', 'fd00::/8'] })));
  const at = (rule: string): number => {
    const i = rules.indexOf(rule);
    t.not(i, -1, `has ${rule}`);
    return i;
  };
  const redirect = at('-A ISTIO_OUTPUT -j ISTIO_REDIRECT');
  const firstOwnerRule = rules.findIndex((r) => r.includes('-m owner'));
  for (const port of [22, 3306]) {
    for (const proto of ['tcp', 'udp']) {
      const i = at(`-A ISTIO_OUTPUT -p ${proto} --dport ${port} -j RETURN`);
      t.ok(i < firstOwnerRule, `port ${port}/${proto} excluded before the hairpin/owner rules (Istio order)`);
    }
  }
  const loopbackReturn = at('-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN');
  for (const cidr of ['10.0.0.0/8', '198.18.5.0/24']) {
    const i = at(`-A ISTIO_OUTPUT -d ${cidr} -j RETURN`);
    t.ok(i > loopbackReturn && i < redirect, `${cidr} excluded after 127.0.0.1 and before the redirect`);
  }
  t.notOk(rules.some((r) => r.includes('fd00::/8')), 'an IPv6 exclusion stays out of the IPv4 table');
  t.ok(lines(buildIp6Rules(withOptions({ excludeOutboundCidrs: ['10.0.0.0/8', 'fd00::/8'] }))).includes('-A ISTIO_OUTPUT -d fd00::/8 -j RETURN'));
  t.equal(redirect, rules.length - 2, 'the redirect is the last rule before COMMIT');
});

t.test('included CIDRs redirect only those ranges (Istio ipnets.golden)', async (t) => {
  const rules = lines(buildRules(withOptions({ includeOutboundCidrs: ['10.0.0.0/8'] })));
  t.ok(rules.includes('-A ISTIO_OUTPUT -d 10.0.0.0/8 -j ISTIO_REDIRECT'));
  t.notOk(rules.includes('-A ISTIO_OUTPUT -j ISTIO_REDIRECT'), 'no catch-all redirect');
  t.ok(rules.includes('-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN'));
});

t.test('an included loopback range drops the app->app-on-lo RETURN (Istio loopback-outbound-iprange.golden)', async (t) => {
  const rules = lines(buildRules(withOptions({ includeOutboundCidrs: ['127.1.2.3/32'] })));
  t.ok(rules.includes('-A ISTIO_OUTPUT -d 127.1.2.3/32 -j ISTIO_REDIRECT'));
  t.notOk(rules.some((r) => r.includes('-o lo -m owner !')), 'no `-o lo ! --uid-owner RETURN` rules');
  t.ok(rules.includes('-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN'), 'the proxy is still never recaptured');
});

t.test('an empty include list captures no outbound traffic', async (t) => {
  const rules = lines(buildRules(withOptions({ includeOutboundCidrs: [] })));
  t.notOk(rules.some((r) => r.endsWith('-j ISTIO_REDIRECT')));
});

t.test('inbound capture: a port list, and none at all', async (t) => {
  const listed = lines(buildRules(withOptions({ inboundPorts: [4000, 5000] })));
  t.ok(listed.includes('-A PREROUTING -p tcp -j ISTIO_INBOUND'));
  t.ok(listed.includes('-A ISTIO_INBOUND -p tcp --dport 4000 -j ISTIO_IN_REDIRECT'));
  t.ok(listed.includes('-A ISTIO_INBOUND -p tcp --dport 5000 -j ISTIO_IN_REDIRECT'));
  t.notOk(listed.includes('-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT'), 'no catch-all');
  t.notOk(listed.includes('-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN'), 'exclusions only apply to *');

  const none = lines(buildRules(withOptions({ inboundPorts: [] })));
  t.notOk(none.some((r) => r.startsWith('-A PREROUTING')), 'no PREROUTING jump');
  t.ok(none.includes('-A OUTPUT -j ISTIO_OUTPUT'), 'outbound capture unaffected');
});

t.test('ports and UID/GID from options reach the rules', async (t) => {
  const text = buildRules(withOptions({ proxyUid: 2000, proxyGid: 3000, outboundPort: 16001, inboundPort: 16006 }));
  t.match(text, /-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 16001\n/);
  t.match(text, /-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006\n/);
  t.match(text, /-A ISTIO_OUTPUT -m owner --uid-owner 2000 -j RETURN\n/);
  t.match(text, /-A ISTIO_OUTPUT -m owner --gid-owner 3000 -j RETURN\n/);
  t.notMatch(text, /1337/);
});

// What iptables-save -t nat (nf_tables backend) prints after installRules, plus rules that are not ours.
const SAVED = `# Generated by iptables-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:ISTIO_INBOUND - [0:0]
:ISTIO_IN_REDIRECT - [0:0]
:ISTIO_OUTPUT - [0:0]
:ISTIO_REDIRECT - [0:0]
:KUBE-SERVICES - [0:0]
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A PREROUTING -j KUBE-SERVICES
-A OUTPUT -j ISTIO_OUTPUT
-A OUTPUT -d 198.18.0.7/32 -p tcp -j REDIRECT --to-ports 9999
-A ISTIO_INBOUND -p tcp -m tcp --dport 15008 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
COMMIT
`;

t.test('the clean script removes our jumps and chains and nothing else', async (t) => {
  t.equal(buildCleanRules(SAVED), `*nat
-D PREROUTING -p tcp -j ISTIO_INBOUND
-D OUTPUT -j ISTIO_OUTPUT
-F ISTIO_INBOUND
-F ISTIO_REDIRECT
-F ISTIO_IN_REDIRECT
-F ISTIO_OUTPUT
-X ISTIO_INBOUND
-X ISTIO_REDIRECT
-X ISTIO_IN_REDIRECT
-X ISTIO_OUTPUT
COMMIT
`);
  t.equal(buildCleanRules('*nat\n:PREROUTING ACCEPT [0:0]\n-A OUTPUT -d 198.18.0.7/32 -j RETURN\nCOMMIT\n'), '', 'no-op on a table without our chains');
});

t.test('flags parse, in both --flag v and --flag=v forms', async (t) => {
  const { options, dryRun, clean } = parseIptablesArgs([
    '--proxy-uid', '2000', '--outbound-port=16001', '--inbound-port', '16006',
    '--exclude-outbound-cidrs', '10.0.0.0/8, 198.18.0.9', '--exclude-outbound-ports', '22,3306',
    '--inbound-ports', '8080,9090', '--dry-run',
  ], {});
  t.same(options, {
    proxyUid: 2000,
    proxyGid: 2000,
    outboundPort: 16001,
    inboundPort: 16006,
    excludeOutboundCidrs: ['10.0.0.0/8', '198.18.0.9/32'],
    includeOutboundCidrs: ['*'],
    excludeOutboundPorts: [22, 3306],
    inboundPorts: [8080, 9090],
    excludeInboundPorts: [15090, 15021, 15020],
    redirectDns: false,
    dnsPort: 15053,
  });
  t.equal(dryRun, true);
  t.equal(clean, false);
});

t.test('no flags gives the defaults; --inbound-ports \'\' disables inbound capture', async (t) => {
  t.same(parseIptablesArgs([], {}).options, defaultCaptureOptions());
  t.same(parseIptablesArgs(['--inbound-ports', ''], {}).options.inboundPorts, []);
  t.equal(parseIptablesArgs(['--inbound-ports', '*'], {}).options.inboundPorts, '*');
  t.same(parseIptablesArgs(['--include-outbound-cidrs='], {}).options.includeOutboundCidrs, []);
});

t.test('SLUICE_<FLAG> env vars are read, and a flag wins over its env var', async (t) => {
  const env = {
    SLUICE_PROXY_UID: '4000',
    SLUICE_OUTBOUND_PORT: '17001',
    SLUICE_EXCLUDE_OUTBOUND_CIDRS: 'fd00::/8',
    SLUICE_INBOUND_PORTS: '',
    SLUICE_CLEAN: 'true',
  };
  const fromEnv = parseIptablesArgs([], env);
  t.equal(fromEnv.options.proxyUid, 4000);
  t.equal(fromEnv.options.proxyGid, 4000, 'gid follows uid');
  t.equal(fromEnv.options.outboundPort, 17001);
  t.same(fromEnv.options.excludeOutboundCidrs, ['fd00::/8']);
  t.same(fromEnv.options.inboundPorts, []);
  t.equal(fromEnv.clean, true);
  const overridden = parseIptablesArgs(['--outbound-port', '18001', '--proxy-gid', '5000'], env);
  t.equal(overridden.options.outboundPort, 18001);
  t.equal(overridden.options.proxyUid, 4000);
  t.equal(overridden.options.proxyGid, 5000);
});

t.test('bad values are all reported at once, with a stable code and the flag named', async (t) => {
  let err: unknown = null;
  try {
    parseIptablesArgs([
      '--exclude-outbound-cidrs', '10.0.0.0/33,not-an-ip,*', '--outbound-port', '70000', '--exclude-outbound-ports', '22,x',
      '--proxy-uid', '-1', '--bogus', 'stray', '--inbound-port',
    ], { SLUICE_INBOUND_PORTS: '0' });
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof Error, 'throws');
  t.equal((err as { code?: string }).code, CaptureErrorCode.INVALID_FLAG);
  const message = (err as Error).message;
  t.match(message, /--exclude-outbound-cidrs: "10\.0\.0\.0\/33" has a bad prefix length \(0-32\)/);
  t.match(message, /--exclude-outbound-cidrs: "not-an-ip" is not an IPv4\/IPv6 CIDR/);
  t.match(message, /'\*' must be alone and is not allowed in an exclusion list/);
  t.match(message, /--outbound-port: "70000" is not a port/);
  t.match(message, /--exclude-outbound-ports: "x" is not a port/);
  t.match(message, /--proxy-uid: "-1" is not a numeric UID\/GID/);
  t.match(message, /unknown flag --bogus/);
  t.match(message, /unexpected argument "stray"/);
  t.match(message, /--inbound-port needs a value/);
  t.match(message, /SLUICE_INBOUND_PORTS: "0" is not a port/);
});

t.test('the same port for inbound and outbound is refused', async (t) => {
  t.throws(() => parseIptablesArgs(['--inbound-port', '15001'], {}), { code: CaptureErrorCode.INVALID_FLAG, message: /both 15001/ });
});

function captureOutput(fn: () => number): { code: number; stdout: string; stderr: string } {
  const out: string[] = [];
  const err: string[] = [];
  const writeOut = process.stdout.write;
  const writeErr = process.stderr.write;
  process.stdout.write = ((chunk: string) => out.push(String(chunk)) > 0) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => err.push(String(chunk)) > 0) as typeof process.stderr.write;
  try {
    return { code: fn(), stdout: out.join(''), stderr: err.join('') };
  } finally {
    process.stdout.write = writeOut;
    process.stderr.write = writeErr;
  }
}

t.test('`sluice iptables --dry-run` prints both tables and changes nothing', async (t) => {
  const r = captureOutput(() => runIptablesCommand(['--dry-run', '--exclude-outbound-ports', '22']));
  t.equal(r.code, 0);
  t.equal(r.stderr, '');
  t.match(r.stdout, /^# iptables-restore --noflush\n\*nat\n/);
  t.match(r.stdout, /\n# ip6tables-restore --noflush\n\*nat\n/);
  t.match(r.stdout, /-A ISTIO_OUTPUT -p tcp --dport 22 -j RETURN\n/);
  t.match(r.stdout, /-A ISTIO_OUTPUT -o lo -s ::6\/128 -j RETURN\n/);
});

t.test('`sluice iptables` with a bad flag exits 2 with the problem and the usage', async (t) => {
  const r = captureOutput(() => runIptablesCommand(['--outbound-port', 'abc']));
  t.equal(r.code, 2);
  t.equal(r.stdout, '');
  t.match(r.stderr, /--outbound-port: "abc" is not a port/);
  t.match(r.stderr, /usage: sluice iptables/);
  t.match(r.stderr, /\[env SLUICE_EXCLUDE_OUTBOUND_CIDRS\]/);
});
