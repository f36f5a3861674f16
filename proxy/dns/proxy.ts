// The sidecar's DNS proxy (Istio's istio-agent DNS on 15053, ISTIO_META_DNS_CAPTURE): `sluice
// iptables --redirect-dns` sends the app's queries here, over UDP and TCP. A standard query for A or
// AAAA of a name the snapshot's table knows (config/compile/dns.ts: ServiceEntry addresses, or the
// VIP allocated for a host without any) is answered here, authoritatively, TTL 30; a known name
// asked for another type gets NODATA. Anything else is forwarded as it came to the resolvers of
// /etc/resolv.conf, in order, and the first reply is passed back byte for byte. The proxy's own
// queries are not captured again (the rules exempt its UID).

import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import type { Logger } from 'pino';
import type { Snapshot } from '../../config/compile/snapshot';
import { addressType, buildAnswer, buildServfail, CLASS_IN, parseQuery, TYPE_A, TYPE_AAAA } from './wire';

/** How long one upstream resolver gets before the next one is asked (ms). */
const UPSTREAM_TIMEOUT_MS = 2_500;
const MAX_UDP = 65_535;
/** A TCP DNS client may send several length-prefixed queries; bound what one connection buffers. */
const MAX_TCP_BUFFER = 2 * 65_537;

export interface Upstream {
  readonly address: string;
  readonly port: number;
}

/** `nameserver` lines of resolv.conf (port 53); an unreadable file gives none. */
export function resolvConfServers(file = '/etc/resolv.conf'): Upstream[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: Upstream[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m !== null && net.isIP(m[1]!) !== 0) out.push({ address: m[1]!, port: 53 });
  }
  return out;
}

export interface DnsProxyOptions {
  readonly host: string;
  readonly port: number;
  readonly snapshot: () => Snapshot;
  readonly upstreams: () => readonly Upstream[];
  readonly log: Logger;
}

/** The local answer to `query`, or null when it must be forwarded. */
export function localAnswer(table: ReadonlyMap<string, readonly string[]> | undefined, query: Buffer): Buffer | null {
  if (table === undefined) return null;
  const q = parseQuery(query);
  if (q === null || q.klass !== CLASS_IN) return null;
  const name = q.name.endsWith('.') ? q.name.slice(0, -1) : q.name;
  const addresses = table.get(name);
  if (addresses === undefined) return null;
  const wanted = q.type === TYPE_A || q.type === TYPE_AAAA ? addresses.filter((a) => addressType(a) === q.type) : [];
  return buildAnswer(query, q, wanted);
}

export class DnsProxy {
  private readonly udp4: dgram.Socket;
  private readonly tcp: net.Server;
  private readonly o: DnsProxyOptions;
  /** answered here / forwarded / forwarding failed: for the admin stats and tests */
  readonly counts = { local: 0, forwarded: 0, failed: 0 };

  constructor(o: DnsProxyOptions) {
    this.o = o;
    this.udp4 = dgram.createSocket('udp4');
    this.udp4.on('message', (msg, rinfo) => this.onUdp(msg, rinfo));
    this.udp4.on('error', (err) => o.log.warn({ err: err.message }, 'dns: UDP socket error'));
    this.tcp = net.createServer((s) => this.onTcp(s));
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.udp4.once('error', reject);
      this.udp4.bind(this.o.port, this.o.host, () => {
        this.udp4.removeListener('error', reject);
        resolve();
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.tcp.once('error', reject);
      this.tcp.listen(this.o.port, this.o.host, () => {
        this.tcp.removeListener('error', reject);
        resolve();
      });
    });
  }

  address(): { name: string; address: string } {
    return { name: 'dns', address: `${this.o.host}:${this.o.port}` };
  }

  close(): void {
    this.udp4.close();
    this.tcp.close();
  }

  private answer(query: Buffer, reply: (b: Buffer) => void, forward: (query: Buffer, servers: readonly Upstream[], done: (b: Buffer | null) => void) => void): void {
    const local = localAnswer(this.o.snapshot().dns, query);
    if (local !== null) {
      this.counts.local++;
      reply(local);
      return;
    }
    forward(query, this.o.upstreams(), (b) => {
      if (b === null) {
        this.counts.failed++;
        reply(buildServfail(query, parseQuery(query)));
        return;
      }
      this.counts.forwarded++;
      reply(b);
    });
  }

  private onUdp(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    this.answer(msg, (b) => this.udp4.send(b, rinfo.port, rinfo.address), forwardUdp);
  }

  private onTcp(s: net.Socket): void {
    s.on('error', () => s.destroy());
    s.setTimeout(30_000, () => s.destroy());
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length > MAX_TCP_BUFFER) {
        s.destroy();
        return;
      }
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        const query = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        this.answer(Buffer.from(query), (b) => {
          if (s.destroyed) return;
          const head = Buffer.alloc(2);
          head.writeUInt16BE(b.length, 0);
          s.write(Buffer.concat([head, b]));
        }, forwardTcp);
      }
    });
  }
}

/** Ask each server in turn over UDP until one replies with this query's ID. */
function forwardUdp(query: Buffer, servers: readonly Upstream[], done: (b: Buffer | null) => void): void {
  const next = (i: number): void => {
    if (i >= servers.length || query.length < 2) {
      done(null);
      return;
    }
    const sv = servers[i]!;
    const sock = dgram.createSocket(net.isIPv6(sv.address) ? 'udp6' : 'udp4');
    let finished = false;
    const finish = (b: Buffer | null): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sock.close();
      if (b === null) next(i + 1);
      else done(b);
    };
    const timer = setTimeout(() => finish(null), UPSTREAM_TIMEOUT_MS);
    sock.on('error', () => finish(null));
    sock.on('message', (m) => {
      if (m.length >= 2 && m.readUInt16BE(0) === query.readUInt16BE(0) && m.length <= MAX_UDP) finish(m);
    });
    sock.send(query, sv.port, sv.address);
  };
  next(0);
}

/** The same over TCP (a TCP query is forwarded over TCP, so a truncation-free answer stays so). */
function forwardTcp(query: Buffer, servers: readonly Upstream[], done: (b: Buffer | null) => void): void {
  const next = (i: number): void => {
    if (i >= servers.length) {
      done(null);
      return;
    }
    const sv = servers[i]!;
    const c = net.connect({ host: sv.address, port: sv.port });
    let buf = Buffer.alloc(0);
    let finished = false;
    const finish = (b: Buffer | null): void => {
      if (finished) return;
      finished = true;
      c.destroy();
      if (b === null) next(i + 1);
      else done(b);
    };
    c.setTimeout(UPSTREAM_TIMEOUT_MS, () => finish(null));
    c.on('error', () => finish(null));
    c.on('close', () => finish(null));
    c.on('connect', () => {
      const head = Buffer.alloc(2);
      head.writeUInt16BE(query.length, 0);
      c.write(Buffer.concat([head, query]));
    });
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) finish(Buffer.from(buf.subarray(2, 2 + buf.readUInt16BE(0))));
    });
  };
  next(0);
}
