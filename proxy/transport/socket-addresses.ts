// The addresses of an accepted connection (a gateway port, or captured by the sidecar, whose
// original destination stands for the local address), read from the socket only when something
// asks for them. Node does not take the peer address from accept(): `remoteAddress` and
// `localAddress` are a getpeername/getsockname syscall each, plus a cached object and strings on
// the socket for the connection's life. On the TCP path nothing asks unless a route matches on
// addresses, a load balancer hashes the source IP, or a record is kept for the access log, so with
// `--access-log off` a plain TCP connection costs neither the syscalls nor the memory (CPU per
// short connection and RSS per idle connection, both measured in bench/README.md).
//
// These classes are the L4Info (l4/tcp-proxy.ts) of an accepted connection, structurally: the
// transport imports nothing above it.
//
// When records are kept, `prime()` reads both addresses at accept: Node caches them on the socket,
// so a record made after the socket has gone (a failed TLS handshake) still has them.

import type net from 'node:net';
import type { AddressOut, TcpHandle } from './tcp-handle';
import type { OriginalDestination } from './original-dst';

export class SocketAddresses {
  sni: string | null = null;
  peerUriSan: string | null = null;

  /** `originalDst`: a captured connection's (SO_ORIGINAL_DST), which stands for the local address. */
  constructor(private readonly socket: net.Socket, readonly originalDst: OriginalDestination | null = null) {}

  /** Read (and let Node cache) the addresses asked later from the socket, now. */
  prime(): this {
    if (this.originalDst === null) void this.socket.localAddress;
    void this.socket.remoteAddress;
    return this;
  }

  /** A gateway routes on the address it was dialled at, a sidecar on the original destination. */
  get dstIp(): string {
    return this.originalDst !== null ? this.originalDst.address : bareIp(this.socket.localAddress);
  }

  get localAddress(): string {
    const od = this.originalDst;
    return od !== null ? formatSocketAddress(od.address, od.port) : formatSocketAddress(this.socket.localAddress, this.socket.localPort);
  }

  get remoteIp(): string {
    return bareIp(this.socket.remoteAddress);
  }

  get remoteAddress(): string {
    return formatSocketAddress(this.socket.remoteAddress, this.socket.remotePort);
  }
}

/**
 * The same for a connection accepted as a bare handle (proxy/transport/tcp-handle.ts): each address is a
 * getsockname/getpeername on first use, kept for the connection's life (`prime()` reads them at
 * accept when records are kept, so a record made after the handle closed still has them).
 */
export class HandleAddresses {
  sni: string | null = null;
  peerUriSan: string | null = null;
  private local: AddressOut | null = null;
  private remote: AddressOut | null = null;

  constructor(private readonly handle: TcpHandle, readonly originalDst: OriginalDestination | null = null) {}

  prime(): this {
    if (this.originalDst === null) this.localOut();
    this.remoteOut();
    return this;
  }

  private localOut(): AddressOut {
    if (this.local === null) {
      this.local = {};
      this.handle.getsockname(this.local);
    }
    return this.local;
  }

  private remoteOut(): AddressOut {
    if (this.remote === null) {
      this.remote = {};
      this.handle.getpeername(this.remote);
    }
    return this.remote;
  }

  get dstIp(): string {
    return this.originalDst !== null ? this.originalDst.address : bareIp(this.localOut().address);
  }

  get localAddress(): string {
    const a = this.originalDst ?? this.localOut();
    return formatSocketAddress(a.address, a.port);
  }

  get remoteIp(): string {
    return bareIp(this.remoteOut().address);
  }

  get remoteAddress(): string {
    const a = this.remoteOut();
    return formatSocketAddress(a.address, a.port);
  }
}

/**
 * The one address formatter: `ip:port`, `[ip6]:port`, '-' for none. An IPv4 peer of a dual-stack
 * socket shows as `::ffff:a.b.c.d` in Node; Envoy logs it as `a.b.c.d`, so both transports strip it.
 */
export function formatSocketAddress(ip: string | undefined, port: number | undefined): string {
  if (ip === undefined) return '-';
  const bare = bareIp(ip);
  return (bare.includes(':') ? '[' + bare + ']' : bare) + ':' + (port ?? 0);
}

/** The IP as Envoy prints it (an IPv4-mapped IPv6 address as IPv4). */
export function bareIp(ip: string | undefined): string {
  if (ip === undefined) return '';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}
