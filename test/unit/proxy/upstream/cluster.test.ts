// UpstreamCluster: DNS resolution against a real DNS server speaking the wire protocol on loopback
// (the one acceptable fake: a tiny authoritative server in this file), TTL-driven re-resolution,
// the hosts file first, last good hosts kept on failure, LOGICAL_DNS's first address; PASSTHROUGH
// load balancing; the connection circuit breaker.

import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { Cluster, DiscoveryType, LbPolicy } from '../../../../config/compile/snapshot';
import { ClusterStats, StatsStore } from '../../../../proxy/observe/stats';
import { UpstreamCluster } from '../../../../proxy/upstream/cluster';
import { configureDns, lookupHostsFile } from '../../../../proxy/upstream/dns';

// ------------------------------------------------------------------ a DNS server (RFC 1035 wire format)

interface Answer { readonly ips: string[]; readonly ttl: number; readonly rcode?: number }

class DnsServer {
  readonly socket = dgram.createSocket('udp4');
  readonly zone = new Map<string, Answer>();
  readonly queries: string[] = [];
  port = 0;

  async start(): Promise<void> {
    this.socket.on('message', (msg, rinfo) => {
      const reply = this.answer(msg);
      if (reply !== null) this.socket.send(reply, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', r));
    this.port = this.socket.address().port;
  }

  private answer(q: Buffer): Buffer | null {
    if (q.length < 17) return null;
    let off = 12;
    const labels: string[] = [];
    while (off < q.length && q[off] !== 0) {
      labels.push(q.subarray(off + 1, off + 1 + q[off]!).toString('ascii'));
      off += 1 + q[off]!;
    }
    const qEnd = off + 5; // zero label + qtype + qclass
    const name = labels.join('.').toLowerCase();
    const qtype = q.readUInt16BE(off + 1);
    this.queries.push(`${name}/${qtype === 1 ? 'A' : qtype === 28 ? 'AAAA' : qtype}`);
    const a = this.zone.get(name);
    const rcode = a === undefined ? 3 : a.rcode ?? 0; // NXDOMAIN for names we do not serve
    const ips = qtype === 1 && a !== undefined && rcode === 0 ? a.ips : [];
    const head = Buffer.alloc(12);
    head.writeUInt16BE(q.readUInt16BE(0), 0); // id
    head.writeUInt16BE(0x8180 | rcode, 2); // QR, RD, RA + rcode
    head.writeUInt16BE(1, 4); // one question
    head.writeUInt16BE(ips.length, 6);
    const answers = ips.map((ip) => {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // pointer to the question name
      rr.writeUInt16BE(1, 2); // A
      rr.writeUInt16BE(1, 4); // IN
      rr.writeUInt32BE(a!.ttl, 6);
      rr.writeUInt16BE(4, 10);
      ip.split('.').forEach((o, i) => rr.writeUInt8(Number(o), 12 + i));
      return rr;
    });
    return Buffer.concat([head, q.subarray(12, qEnd), ...answers]);
  }

  close(): void {
    this.socket.close();
  }
}

function cluster(type: DiscoveryType, address: string, opts: { lb?: LbPolicy; maxConnections?: number } = {}): Cluster {
  return {
    name: `outbound|80||${address}`, sniName: '', type, host: address, port: 80, subset: '', protocol: 'TCP',
    endpoints: type === 'ORIGINAL_DST' ? [] : [{ address, port: 80, labels: {}, weight: 1, locality: '', network: '' }],
    lb: opts.lb ?? { kind: 'ROUND_ROBIN' }, connectTimeoutMs: 1000, idleTimeoutMs: 0, maxRequestsPerConnection: 0,
    tcpKeepalive: null, dnsRefreshMs: 60_000,
    circuitBreakers: { maxConnections: opts.maxConnections ?? 4294967295, maxPendingRequests: 4294967295, maxRequests: 4294967295, maxRetries: 4294967295 },
    tls: null, emptyReason: null,
  };
}

function live(t: { teardown(fn: () => unknown): void }, c: Cluster): UpstreamCluster {
  const u = new UpstreamCluster(c, new ClusterStats(new StatsStore(), c.name));
  t.teardown(() => u.close());
  return u;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!cond()) throw new Error(`gave up waiting for ${what}`);
}

const addrs = (u: UpstreamCluster) => u.hosts.map((h) => h.key);

t.test('DNS with configured servers', async (t) => {
  const dns = new DnsServer();
  await dns.start();
  t.teardown(() => dns.close());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-dns-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const hostsFile = path.join(dir, 'hosts');
  fs.writeFileSync(hostsFile, '127.0.0.1 localhost\n127.0.0.9   pinned.sluice.test  # a comment\n');
  t.teardown(() => configureDns({}));

  t.test('re-resolves when the record TTL expires, not at the 60 s refresh', async (t) => {
    configureDns({ servers: [`127.0.0.1:${dns.port}`], hostsFile, minRefreshMs: 0 });
    dns.zone.set('svc.sluice.test', { ips: ['127.0.0.2', '127.0.0.3'], ttl: 1 });
    const u = live(t, cluster('STRICT_DNS', 'svc.sluice.test'));
    await u.start();
    t.same(addrs(u), ['127.0.0.2:80', '127.0.0.3:80'], 'STRICT_DNS: every A record is a host');
    t.equal(u.nextRefreshMs, 1000, 'next resolution scheduled at the 1 s TTL');
    dns.zone.set('svc.sluice.test', { ips: ['127.0.0.4'], ttl: 30 });
    await until(() => addrs(u).join() === '127.0.0.4:80', 'the re-resolution');
    t.pass('the new address replaced the old ones after the TTL');
    t.equal(u.nextRefreshMs, 30_000, 'then the new 30 s TTL drives the schedule');
    t.equal(u.stats.membership_total.value, 1);
    t.ok(dns.queries.filter((q) => q === 'svc.sluice.test/A').length >= 2, 'the server was asked again');
  });

  t.test('the minimum refresh bounds a tiny TTL (Envoy dns_min_refresh_rate)', async (t) => {
    configureDns({ servers: [`127.0.0.1:${dns.port}`], hostsFile, minRefreshMs: 5000 });
    dns.zone.set('short.sluice.test', { ips: ['127.0.0.5'], ttl: 1 });
    const u = live(t, cluster('STRICT_DNS', 'short.sluice.test'));
    await u.start();
    t.equal(u.nextRefreshMs, 5000);
  });

  t.test('the hosts file is read first and has no TTL', async (t) => {
    configureDns({ servers: [`127.0.0.1:${dns.port}`], hostsFile, minRefreshMs: 0 });
    const before = dns.queries.length;
    const u = live(t, cluster('STRICT_DNS', 'pinned.sluice.test'));
    await u.start();
    t.same(addrs(u), ['127.0.0.9:80']);
    t.equal(dns.queries.length, before, 'the DNS server was not asked');
    t.equal(u.nextRefreshMs, 60_000, 'no TTL: the cluster refresh rate');
  });

  t.test('a failed re-resolution keeps the last good hosts; a name never resolved gives none', async (t) => {
    configureDns({ servers: [`127.0.0.1:${dns.port}`], hostsFile, minRefreshMs: 0 });
    dns.zone.set('flaky.sluice.test', { ips: ['127.0.0.6'], ttl: 1 });
    const u = live(t, cluster('STRICT_DNS', 'flaky.sluice.test'));
    await u.start();
    t.same(addrs(u), ['127.0.0.6:80']);
    dns.zone.set('flaky.sluice.test', { ips: [], ttl: 1, rcode: 2 }); // SERVFAIL
    const asked = dns.queries.length;
    await until(() => dns.queries.length > asked + 1, 'a failed re-resolution');
    await new Promise((r) => setTimeout(r, 50));
    t.same(addrs(u), ['127.0.0.6:80'], 'still the last good address');
    t.equal(u.noHostsReason, null);

    const none = live(t, cluster('STRICT_DNS', 'unknown.sluice.test'));
    await none.start();
    t.same(addrs(none), [], 'NXDOMAIN: no hosts (503 UH)');
    t.match(none.noHostsReason, /DNS resolution of unknown\.sluice\.test failed/);
    t.ok(dns.queries.includes('unknown.sluice.test/A'), 'asked of the configured server, not the system resolver');
  });

  t.test('LOGICAL_DNS (DNS_ROUND_ROBIN) uses the first address only', async (t) => {
    configureDns({ servers: [`127.0.0.1:${dns.port}`], hostsFile, minRefreshMs: 0 });
    dns.zone.set('logical.sluice.test', { ips: ['127.0.0.7', '127.0.0.8'], ttl: 60 });
    const u = live(t, cluster('LOGICAL_DNS', 'logical.sluice.test'));
    await u.start();
    t.same(addrs(u), ['127.0.0.7:80']);
  });
  t.end();
});

t.test('without DNS servers, getaddrinfo: /etc/hosts works as before', async (t) => {
  configureDns({});
  const u = live(t, cluster('STRICT_DNS', 'localhost'));
  await u.start();
  t.ok(addrs(u).includes('127.0.0.1:80'), `localhost resolved (${addrs(u)})`);
  t.equal(u.nextRefreshMs, 60_000);
});

t.test('hosts file parsing', async (t) => {
  const text = '# c\n127.0.0.1 localhost\n198.18.0.5 a.test b.test\n::1 localhost ip6-localhost\n198.18.0.6 A.TEST\n';
  t.same(lookupHostsFile(text, 'a.test'), ['198.18.0.5', '198.18.0.6'], 'all lines, case-insensitive');
  t.same(lookupHostsFile(text, 'localhost'), ['127.0.0.1', '::1'], 'v4 first');
  t.equal(lookupHostsFile(text, 'c'), null, 'a comment is not a name');
});

t.test('PASSTHROUGH load balancing sends to the original destination, whatever the endpoints', async (t) => {
  const u = live(t, cluster('EDS', '198.18.0.1', { lb: { kind: 'PASSTHROUGH' } }));
  await u.start();
  const h = u.pick({ sourceIp: '198.18.0.2', hashValue: null }, { address: '198.18.3.3', port: 8443 });
  t.equal(h?.key, '198.18.3.3:8443');
  t.equal(u.pick({ sourceIp: '198.18.0.2', hashValue: null }, null), null, 'no original destination (a gateway): no host');
});

t.test('maxConnections: overflowError counts upstream_cx_overflow once the cluster is full', async (t) => {
  const u = live(t, cluster('EDS', '198.18.0.1', { maxConnections: 2 }));
  t.equal(u.overflowError(), null);
  u.stats.upstream_cx_active.set(2);
  const err = u.overflowError();
  t.equal(err?.code, 'PRX_ERR_UPSTREAM_OVERFLOW');
  t.equal(u.stats.upstream_cx_overflow.value, 1);
  const unlimited = live(t, cluster('EDS', '198.18.0.1'));
  unlimited.stats.upstream_cx_active.set(1_000_000);
  t.equal(unlimited.overflowError(), null, 'Istio default (MaxUint32): never');
});
