// libuv TCP handles without net.Socket, for the plain-TCP fast path (a gateway TCP port relaying to
// a plain-TCP cluster): accept, connect, read, write, shut down, reset and close straight on Node's
// `tcp_wrap` / `stream_wrap` bindings, the objects net.Socket itself drives.
//
// Why: per short proxied connection, two net.Sockets (Duplex state, EventEmitter, write
// queue, nextTick'd events, a Socket per accept even before we know what the connection is) cost a
// Node relay ~200-250 CPU-µs on this box against HAProxy's ~100; the same relay on bare handles costs
// ~135-175 and runs as many connections per second as HAProxy (bench/micro/relay.bench.ts, mode
// 'handles'; bench/README.md).
// An idle proxied connection also keeps far less memory without the two Socket objects.
//
// The risk, and how it is contained: `process.binding()` is deprecated (DEP0111, documentation-only;
// a warning only under --pending-deprecation), but `tcp_wrap` and `stream_wrap` are on its allow-list
// from Node 20 through 24. Everything that touches the bindings is in this file
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

/** A write req carrying what its completion callback needs (`owner`), set for a pending write only. */
export type OwnedWriteReq<O> = WriteReq & { owner?: O | undefined };

/** A write req object no write has wrapped yet (see writeReusingReq). */
let spareWriteReq: OwnedWriteReq<unknown> | null = null;

/** writeReusingReq's result for a write libuv finished at once (no callback follows). */
export const WRITE_DONE = 0;
/** ... for a write still in libuv: `oncomplete` is called later, with `this.owner` set. */
export const WRITE_PENDING = 1;

/**
 * Write `chunk` to `handle`: WRITE_DONE, WRITE_PENDING, or a negative errno. Node wraps a write req
 * object only when the write has to wait in libuv; a write done at once (nearly every write of a
 * short connection) leaves it untouched, so it is kept for the next write instead of allocating
 * one per write. A pending write keeps `chunk` alive on the req until `oncomplete`.
 */
export function writeReusingReq<O>(h: TcpHandles, handle: TcpHandle, chunk: Buffer, oncomplete: (this: OwnedWriteReq<O>, status: number) => void, owner: O): number {
  const req = (spareWriteReq ?? h.newWriteReq()) as OwnedWriteReq<O>;
  req.handle = handle;
  req.oncomplete = oncomplete as WriteReq['oncomplete'];
  req.owner = owner;
  const err = handle.writeBuffer(req, chunk);
  if (err !== 0 || !h.lastWriteWasAsync()) {
    req.owner = undefined;
    spareWriteReq = req;
    return err;
  }
  spareWriteReq = null;
  req.buffer = chunk;
  return WRITE_PENDING;
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

const PROBE_BYTES = Buffer.from('sluice-probe');
const PROBE_TIMEOUT_MS = 2000;

/**
 * The start-up behaviour probe: that the methods exist (load) says little about what they do on
 * this Node, so before any listener opens, one loopback connection is made on the handles the way
 * the fast path uses them: listen, accept (onconnection), connect (oncomplete), a write from the
 * client, a read on the accepted side with the byte count and offset from streamBaseState, an EOF
 * after a shutdown, then close. Any difference (an exception, an error code, other bytes, no
 * callback within 2 s) turns the fast path off for the process, with the reason
 * (`tcpHandlesUnavailableReason()`), and every connection takes the net.Socket path.
 */
export async function probeTcpHandles(): Promise<void> {
  const h = tcpHandles();
  if (h === null) return;
  const failure = await roundTrip(h).catch((e: unknown) => (e as Error).message);
  if (failure !== null) loaded = { handles: null, reason: `bare TCP handles failed the start-up probe: ${failure}` };
}

function roundTrip(h: TcpHandles): Promise<string | null> {
  return new Promise((resolve) => {
    const opened: TcpHandle[] = [];
    const done = (failure: string | null): void => {
      clearTimeout(timer);
      for (const o of opened.splice(0)) o.close();
      resolve(failure);
    };
    const timer = setTimeout(() => done('no answer on loopback within ' + PROBE_TIMEOUT_MS + ' ms'), PROBE_TIMEOUT_MS);
    const check = (rc: number, what: string): boolean => {
      if (rc === 0) return true;
      done(`${what}: ${uvError(rc, what).code}`);
      return false;
    };
    const server = h.newServer();
    opened.push(server);
    if (!check(server.bind('127.0.0.1', 0), 'bind') || !check(server.listen(1), 'listen')) return;
    const addr: AddressOut = {};
    if (!check(server.getsockname(addr), 'getsockname') || typeof addr.port !== 'number') return done('no listening port');
    let got = Buffer.alloc(0);
    server.onconnection = (status, accepted) => {
      if (status < 0 || accepted === undefined) return done(`accept: ${status}`);
      opened.push(accepted);
      accepted.onread = (ab) => {
        // A throw here would be uncaught (libuv's callback): a failed probe instead.
        try {
          const n = h.readResult();
          if (n > 0) got = Buffer.concat([got, Buffer.from(ab!, h.readOffset(), n)]);
          else if (n === h.UV_EOF) done(got.equals(PROBE_BYTES) ? null : `read ${JSON.stringify(got.toString('latin1'))}, wrote ${JSON.stringify(PROBE_BYTES.toString())}`);
          else if (n < 0) done(`read: ${uvError(n, 'read').code}`);
        } catch (e) {
          done(`read: ${(e as Error).message}`);
        }
        return undefined;
      };
      check(accepted.readStart(), 'readStart');
    };
    const client = h.newSocket();
    opened.push(client);
    const req = h.newConnectReq();
    req.oncomplete = (status) => {
      if (!check(status, 'connect')) return;
      const w = h.newWriteReq();
      w.handle = client;
      w.buffer = PROBE_BYTES;
      w.oncomplete = () => {};
      if (!check(client.writeBuffer(w, PROBE_BYTES), 'write')) return;
      const sd = h.newShutdownReq();
      sd.handle = client;
      sd.oncomplete = () => {};
      check(client.shutdown(sd), 'shutdown');
    };
    check(client.connect(req, '127.0.0.1', addr.port), 'connect');
  });
}

/** Test seam: read SLUICE_TCP_HANDLES and the bindings again on next use. */
export function resetTcpHandlesForTests(): void {
  loaded = null;
}
