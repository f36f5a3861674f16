// libuv TCP handles without net.Socket, for the plain-TCP fast path (a gateway TCP port relaying to
// a plain-TCP cluster): accept, connect, read, write, shut down, reset and close straight on Node's
// `tcp_wrap` / `stream_wrap` bindings, the objects net.Socket itself drives.
//
// Why (issue 6): per short proxied connection, two net.Sockets (Duplex state, EventEmitter, write
// queue, nextTick'd events, a Socket per accept even before we know what the connection is) cost a
// Node relay ~200-250 CPU-µs on this box against HAProxy's ~100; the same relay on bare handles costs
// ~135-175 and runs as many connections per second as HAProxy (bench/micro/relay.bench.ts, mode
// 'handles'; bench/README.md).
// An idle proxied connection also keeps far less memory without the two Socket objects.
//
// The risk, and how it is contained: `process.binding()` is deprecated (DEP0111, documentation-only;
// a warning only under --pending-deprecation), but `tcp_wrap` and `stream_wrap` are on its allow-list
// from Node 20 through 24 (PERFORMANCE.md §1.3). Everything that touches the bindings is in this file
// and checked once at start-up (`tcpHandles()`): when they are missing or not shaped as expected,
// sluice says so once and every connection takes the net.Socket path, which stays the path for TLS,
// HTTP and anything inspected. `SLUICE_TCP_HANDLES=off` forces that fallback.

import util from 'node:util';

/** The subset of a `tcp_wrap` TCP handle this proxy uses (names as in Node's C++ TCPWrap). */
export interface TcpHandle {
  /** stream_wrap onread: `this` is the handle; the byte count / errno is in streamBaseState */
  /** must be a function: Node asserts (and aborts) when it is set to anything else */
  onread: (this: TcpHandle, arrayBuffer: ArrayBuffer | undefined) => Uint8Array | undefined;
  /** server handles: a new connection (or an accept error as a negative errno) */
  onconnection: ((this: TcpHandle, status: number, client: TcpHandle | undefined) => void) | null;
  readStart(): number;
  readStop(): number;
  writeBuffer(req: WriteReq, buf: Uint8Array): number;
  shutdown(req: ShutdownReq): number;
  connect(req: ConnectReq, address: string, port: number): number;
  connect6(req: ConnectReq, address: string, port: number): number;
  bind(address: string, port: number): number;
  bind6(address: string, port: number, flags: number): number;
  listen(backlog: number): number;
  getsockname(out: AddressOut): number;
  getpeername(out: AddressOut): number;
  setNoDelay(on: boolean): number;
  setKeepAlive(on: boolean, delaySeconds: number): number;
  useUserBuffer(buf: Uint8Array): void;
  /** RST instead of FIN, then close (uv_tcp_close_reset); returns an errno */
  reset(cb?: () => void): number;
  close(cb?: () => void): void;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly fd: number;
}

export interface AddressOut {
  address?: string;
  family?: string;
  port?: number;
}

export interface WriteReq {
  handle: TcpHandle;
  oncomplete: (this: WriteReq, status: number) => void;
  /** keeps the bytes alive (and unchanged) while libuv still writes them */
  buffer: Uint8Array | null;
}

export interface ShutdownReq {
  handle: TcpHandle;
  oncomplete: (this: ShutdownReq, status: number) => void;
}

export interface ConnectReq {
  oncomplete: (this: ConnectReq, status: number, handle: TcpHandle, req: ConnectReq, readable: boolean, writable: boolean) => void;
  address: string;
  port: number;
}

export interface TcpHandles {
  newSocket(): TcpHandle;
  newServer(): TcpHandle;
  newWriteReq(): WriteReq;
  newShutdownReq(): ShutdownReq;
  newConnectReq(): ConnectReq;
  /** bytes (> 0), 0, or a negative errno of the read being delivered */
  readResult(): number;
  /** offset of the delivered bytes in onread's ArrayBuffer (default allocation) */
  readOffset(): number;
  /** the last writeBuffer left bytes queued in libuv: its req completes later */
  lastWriteWasAsync(): boolean;
  readonly UV_EOF: number;
  readonly IPV6ONLY: number;
}

interface Bindings {
  tcp: { TCP: new (type: number) => TcpHandle; TCPConnectWrap: new () => ConnectReq; constants: { SOCKET: number; SERVER: number; UV_TCP_IPV6ONLY: number } };
  stream: {
    WriteWrap: new () => WriteReq;
    ShutdownWrap: new () => ShutdownReq;
    streamBaseState: Int32Array;
    kReadBytesOrError: number;
    kArrayBufferOffset: number;
    kLastWriteWasAsync: number;
  };
}

const REQUIRED_METHODS = ['readStart', 'readStop', 'writeBuffer', 'shutdown', 'connect', 'connect6', 'bind', 'bind6', 'listen', 'getsockname', 'getpeername', 'setNoDelay', 'setKeepAlive', 'useUserBuffer', 'reset', 'close'];

let loaded: { handles: TcpHandles | null; reason: string } | null = null;

/** The handle API, or null (with `tcpHandlesUnavailableReason()`) when this Node cannot give it. */
export function tcpHandles(): TcpHandles | null {
  loaded ??= load();
  return loaded.handles;
}

export function tcpHandlesUnavailableReason(): string {
  loaded ??= load();
  return loaded.reason;
}

function load(): { handles: TcpHandles | null; reason: string } {
  if (process.env['SLUICE_TCP_HANDLES'] === 'off') return { handles: null, reason: 'SLUICE_TCP_HANDLES=off' };
  let b: Bindings;
  try {
    const binding = (process as unknown as { binding(name: string): unknown }).binding;
    b = { tcp: binding('tcp_wrap') as Bindings['tcp'], stream: binding('stream_wrap') as Bindings['stream'] };
  } catch (e) {
    return { handles: null, reason: `process.binding('tcp_wrap'/'stream_wrap') unavailable: ${(e as Error).message}` };
  }
  const { tcp, stream } = b;
  if (typeof tcp?.TCP !== 'function' || typeof tcp.TCPConnectWrap !== 'function' || typeof stream?.WriteWrap !== 'function' || typeof stream.ShutdownWrap !== 'function' || !(stream.streamBaseState instanceof Int32Array)) {
    return { handles: null, reason: 'tcp_wrap/stream_wrap bindings are not shaped as in Node 20-24' };
  }
  const probe = new tcp.TCP(tcp.constants.SOCKET);
  const missing = REQUIRED_METHODS.filter((m) => typeof (probe as unknown as Record<string, unknown>)[m] !== 'function');
  probe.close();
  if (missing.length > 0) return { handles: null, reason: `TCP handles lack ${missing.join(', ')}` };
  const state = stream.streamBaseState;
  const { kReadBytesOrError, kArrayBufferOffset, kLastWriteWasAsync } = stream;
  const { SOCKET, SERVER, UV_TCP_IPV6ONLY } = tcp.constants;
  const { TCP, TCPConnectWrap } = tcp;
  const { WriteWrap, ShutdownWrap } = stream;
  return {
    reason: '',
    handles: {
      newSocket: () => new TCP(SOCKET),
      newServer: () => new TCP(SERVER),
      newWriteReq: () => new WriteWrap(),
      newShutdownReq: () => new ShutdownWrap(),
      newConnectReq: () => new TCPConnectWrap(),
      readResult: () => state[kReadBytesOrError]!,
      readOffset: () => state[kArrayBufferOffset]!,
      lastWriteWasAsync: () => state[kLastWriteWasAsync] !== 0,
      UV_EOF: -4095,
      IPV6ONLY: UV_TCP_IPV6ONLY,
    },
  };
}

/** An Error shaped as Node's own socket errors (`code` = the errno name, e.g. ECONNRESET). */
export function uvError(errno: number, syscall: string): NodeJS.ErrnoException {
  let name: string;
  try {
    name = util.getSystemErrorName(errno);
  } catch {
    name = 'UNKNOWN';
  }
  const e: NodeJS.ErrnoException = new Error(`${syscall} ${name}`);
  e.code = name;
  e.errno = errno;
  e.syscall = syscall;
  return e;
}

/** Test seam: read SLUICE_TCP_HANDLES and the bindings again on next use. */
export function resetTcpHandlesForTests(): void {
  loaded = null;
}
