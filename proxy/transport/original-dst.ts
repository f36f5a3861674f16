// Where did the app mean to go? For a connection that an iptables REDIRECT sent to the capture port (15001),
// the kernel's conntrack entry still holds the original destination; Envoy reads it with
// getsockopt(SOL_IP, SO_ORIGINAL_DST) (envoy.filters.listener.original_dst). Node has no getsockopt, so a tiny
// N-API addon of ours does the syscall (proxy/transport/native/, see its README).
//
// Never guess: when the addon is missing, the capture listener must refuse to start (it prints
// originalDstSupport().reason) rather than send traffic to a made-up destination.

import type * as net from 'node:net';
import * as path from 'node:path';
import { ProxyError, ProxyErrorCode } from '../errors';

/** Where a captured connection was going: what routing and ORIGINAL_DST clusters read. */
export interface OriginalDestination {
  readonly address: string;
  readonly port: number;
}

export interface OriginalDst {
  readonly family: 4 | 6;
  readonly address: string;
  readonly port: number;
}

/** Shape of the addon's export (original_dst.c). */
interface OriginalDstAddon {
  getOriginalDst(fd: number): [family: 4 | 6, address: string, port: number] | null;
  /** absent in an addon built before it was added */
  setKeepAliveProbes?(fd: number, intervalSeconds: number, probes: number): void;
}

/** Env override for the addon path: for packagers that put the .node elsewhere, and for tests. */
export const ORIGINAL_DST_ADDON_ENV = 'SLUICE_ORIGINAL_DST_ADDON';

/**
 * The addon lives in the source tree, not in dist/ (node-gyp builds it in place, `npm run build:addon`).
 * This file compiles to dist/proxy/transport/original-dst.js, so the package root is three levels up.
 */
export function defaultAddonPath(): string {
  return path.resolve(__dirname, '..', '..', '..', 'proxy', 'transport', 'native', 'build', 'Release', 'original_dst.node');
}

interface LoadState {
  readonly addon: OriginalDstAddon | null;
  readonly support: { readonly ok: boolean; readonly reason: string };
}

let loaded: LoadState | null = null;

function load(): LoadState {
  if (loaded !== null) return loaded;
  const override = process.env[ORIGINAL_DST_ADDON_ENV];
  const file = override !== undefined && override !== '' ? path.resolve(override) : defaultAddonPath();
  const source = override !== undefined && override !== '' ? ` (from ${ORIGINAL_DST_ADDON_ENV})` : '';
  try {
    const addon = require(file) as Partial<OriginalDstAddon>;
    if (typeof addon.getOriginalDst !== 'function') {
      loaded = { addon: null, support: { ok: false, reason: `${file}${source} does not export getOriginalDst; rebuild it with \`npm run build:addon\`` } };
    } else {
      loaded = { addon: addon as OriginalDstAddon, support: { ok: true, reason: `SO_ORIGINAL_DST addon loaded from ${file}${source}` } };
    }
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    loaded = {
      addon: null,
      support: {
        ok: false,
        reason: `cannot load the SO_ORIGINAL_DST addon ${file}${source}: ${why}. ` +
          'Build it with `npm run build:addon` (needs a C compiler, make and python3 for node-gyp); ' +
          'without it the sidecar cannot learn where redirected connections were going.',
      },
    };
  }
  return loaded;
}

/** Is the addon usable, and if not, a sentence an operator can act on. Loads the addon on first call. */
export function originalDstSupport(): { readonly ok: boolean; readonly reason: string } {
  return load().support;
}

/** Node exposes no public fd for net sockets; TCPWrap's `fd` getter is the only way to reach it (Unix only). */
interface HandleWithFd {
  readonly fd?: number;
}

/**
 * The original destination of an accepted, REDIRECTed TCP connection.
 * null: not redirected (no NAT entry, or the "original" destination is this socket's own address).
 * Throws ProxyError(ORIGINAL_DST) when the addon is missing or getsockopt fails (closed socket, bug).
 * Cost: one getsockname + one getsockopt syscall (two getsockopt for native IPv6), see bench/micro/original-dst.bench.ts.
 */
export function getOriginalDst(socket: net.Socket): OriginalDst | null {
  return getOriginalDstOf((socket as unknown as { _handle?: HandleWithFd | null })._handle ?? null);
}

/** The same for a bare TCP handle (proxy/transport/tcp-handle.ts), or a socket's handle. */
export function getOriginalDstOf(handle: HandleWithFd | null): OriginalDst | null {
  const state = loaded ?? load();
  if (state.addon === null) throw new ProxyError(ProxyErrorCode.ORIGINAL_DST, state.support.reason);
  const fd = handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw new ProxyError(ProxyErrorCode.ORIGINAL_DST, 'cannot read SO_ORIGINAL_DST: the socket has no file descriptor (closed, or not a TCP socket)');
  }
  let raw: [4 | 6, string, number] | null;
  try {
    raw = state.addon.getOriginalDst(fd);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
    throw new ProxyError(ProxyErrorCode.ORIGINAL_DST, `getsockopt(SO_ORIGINAL_DST) failed on fd ${fd}: ${code}`, { cause: err });
  }
  if (raw === null) return null;
  return { family: raw[0], address: raw[1], port: raw[2] };
}

/** Test seam: forget the loaded addon so the next call re-reads SLUICE_ORIGINAL_DST_ADDON. */
export function resetOriginalDstForTests(): void {
  loaded = null;
}

/** Can setKeepAliveProbes act (an addon built with it)? */
export function keepAliveProbesSupported(): boolean {
  return typeof (loaded ?? load()).addon?.setKeepAliveProbes === 'function';
}

/**
 * TCP_KEEPINTVL and TCP_KEEPCNT on a connected socket (or bare handle), through the same addon
 * (DestinationRule `tcpKeepalive.interval` / `probes`; Node sets only SO_KEEPALIVE and the idle
 * time). false when the addon (or this function of it) is missing or the call failed: the kernel's
 * defaults then stay, as they would for unset fields.
 */
export function setKeepAliveProbes(target: net.Socket | HandleWithFd, intervalMs: number, probes: number): boolean {
  const state = loaded ?? load();
  const fn = state.addon?.setKeepAliveProbes;
  if (fn === undefined) return false;
  // A bare handle has `fd`; a net.Socket's TCPWrap has it; a TLSSocket's TLSWrap does not, its TCP
  // handle (`_parent`) does.
  type Wrap = HandleWithFd & { readonly _parent?: HandleWithFd };
  const handle = 'fd' in target ? (target as Wrap) : (target as unknown as { _handle?: Wrap | null })._handle ?? null;
  const fd = handle?.fd ?? handle?._parent?.fd;
  if (typeof fd !== 'number' || fd < 0) return false;
  try {
    fn(fd, Math.max(1, Math.round(intervalMs / 1000)), Math.max(1, probes));
    return true;
  } catch {
    return false;
  }
}
