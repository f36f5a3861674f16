// Resolution of DNS-typed clusters (STRICT_DNS / LOGICAL_DNS), results cached per cluster and
// refreshed by the cluster itself, never per connection.
//
// Two modes, as Envoy's c-ares resolver behaves with its default config ("files" then "dns"):
// - default: getaddrinfo (dns.lookup), which honours /etc/hosts and the system resolver; it gives
//   no TTL, so the cluster refreshes every dnsRefreshMs (Istio's 60 s).
// - with DNS servers configured (configureDns): the name is looked up in the hosts file first
//   (no TTL), then asked of those servers only with the record TTLs, so the cluster re-resolves
//   when the shortest TTL expires (Istio sets respect_dns_ttl), never sooner than minRefreshMs
//   (Envoy's dns_min_refresh_rate, 5 s). A name the servers cannot answer is an error; the system
//   resolver is never consulted in this mode.

import dns from 'node:dns';
import fs from 'node:fs';

export interface Resolved {
  readonly addresses: readonly string[];
  readonly error: NodeJS.ErrnoException | null;
  /** Shortest record TTL in ms; null when unknown (getaddrinfo, hosts file, IP literal). */
  readonly ttlMs: number | null;
}

export interface DnsConfig {
  /** `ip` or `ip:port`; empty = getaddrinfo */
  readonly servers: readonly string[];
  readonly hostsFile: string;
  readonly minRefreshMs: number;
  /** per query, as c-ares' default (5 s) */
  readonly timeoutMs: number;
}

const DEFAULTS: DnsConfig = { servers: [], hostsFile: '/etc/hosts', minRefreshMs: 5_000, timeoutMs: 5_000 };
let config: DnsConfig = DEFAULTS;
let resolver: dns.Resolver | null = null;

/** Process-wide DNS settings (the runtime calls this once at boot; tests per case). */
export function configureDns(c: Partial<DnsConfig>): void {
  config = { ...DEFAULTS, ...c };
  if (config.servers.length === 0) {
    resolver = null;
    return;
  }
  resolver = new dns.Resolver({ timeout: config.timeoutMs, tries: 2 });
  resolver.setServers([...config.servers]);
}

export function dnsConfig(): DnsConfig {
  return config;
}

export function isIpLiteral(s: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(s) || s.includes(':');
}

/** Addresses of `name` in a hosts file (v4 first), or null when the name is not there. */
export function lookupHostsFile(text: string, name: string): string[] | null {
  const want = name.toLowerCase();
  const v4: string[] = [];
  const v6: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    const parts = line.split(/\s+/);
    for (let i = 1; i < parts.length; i++) {
      if (parts[i]!.toLowerCase() !== want) continue;
      const ip = parts[0]!;
      if (ip.includes(':')) v6.push(ip);
      else v4.push(ip);
    }
  }
  const all = [...new Set([...v4, ...v6])];
  return all.length > 0 ? all : null;
}

export function resolveName(name: string, cb: (r: Resolved) => void): void {
  if (isIpLiteral(name)) {
    cb({ addresses: [name], error: null, ttlMs: null });
    return;
  }
  if (resolver === null) {
    lookupSystem(name, cb);
    return;
  }
  fs.readFile(config.hostsFile, 'utf8', (err, text) => {
    const fromFile = err ? null : lookupHostsFile(text, name);
    if (fromFile !== null) {
      cb({ addresses: fromFile, error: null, ttlMs: null });
      return;
    }
    queryServers(resolver!, name, cb);
  });
}

function lookupSystem(name: string, cb: (r: Resolved) => void): void {
  dns.lookup(name, { all: true }, (err, list) => {
    if (err) {
      cb({ addresses: [], error: err, ttlMs: null });
      return;
    }
    // IPv4 first: Envoy's default dns_lookup_family in Istio is V4_PREFERRED.
    const v4 = list.filter((a) => a.family === 4).map((a) => a.address);
    const v6 = list.filter((a) => a.family === 6).map((a) => a.address);
    cb({ addresses: [...new Set([...v4, ...v6])], error: null, ttlMs: null });
  });
}

/** A records first; AAAA only when there is no A record (V4_PREFERRED). */
function queryServers(r: dns.Resolver, name: string, cb: (r: Resolved) => void): void {
  r.resolve4(name, { ttl: true }, (err4, v4) => {
    if (!err4 && v4.length > 0) {
      cb(withTtl(v4));
      return;
    }
    r.resolve6(name, { ttl: true }, (err6, v6) => {
      if (!err6 && v6.length > 0) {
        cb(withTtl(v6));
        return;
      }
      cb({ addresses: [], error: err4 ?? err6 ?? Object.assign(new Error(`no address for ${name}`), { code: 'ENODATA' }), ttlMs: null });
    });
  });
}

function withTtl(records: readonly dns.RecordWithTtl[]): Resolved {
  let ttl = Infinity;
  for (const rec of records) if (rec.ttl < ttl) ttl = rec.ttl;
  return { addresses: [...new Set(records.map((rec) => rec.address))], error: null, ttlMs: ttl * 1000 };
}
