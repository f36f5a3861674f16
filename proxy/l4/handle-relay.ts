// The L4 byte pipe between two bare TCP handles (tcp-handle.ts says why handles): the same contract
// as relay.ts, which does this for net.Sockets, without a Socket, a stream or an event per chunk.
//
// Per direction: read -> writeBuffer() on the peer. A write libuv could not finish at once (the
// peer's kernel buffer is full) stops reading the source until it completes, so at most one read
// chunk per direction waits in user memory.
//
// Read buffers: a fresh, exactly-sized buffer per read from Node (nothing held while idle, and a
// pending write simply keeps its own chunk alive) until a read fills libuv's 64 KiB: from then on the
// direction carries bulk and reads into a 64 KiB buffer of its own, written on without a copy. That
// is safe because reading stops while a write of it is pending.
//
// Lifecycle (relay.ts's rules):
// - EOF from one side          -> shutdown() the other side's write half (after its pending writes:
//                                 libuv queues the shutdown behind them), keep relaying the other way.
// - both EOFs                  -> a clean end: each side is closed once nothing waits to be written
//                                 to it. Closing sends the FIN a shutdown would (nothing is left
//                                 unread), whether or not the shutdown queued on it has run yet;
//                                 so no shutdown completion is waited for, and none is asked for
//                                 (Node calls no JS for a req without `oncomplete`).
// - a read/write error on one side -> close that side, reset (RST) the other, as Envoy propagates a
//                                 reset. A failed shutdown shows as the read error of that side.
// - abort() (idle timeout)     -> close both.
// - hooks.onClose fires exactly once, when the second handle is closed. libuv closes the socket
//   inside uv_close (the FIN or RST leaves then); only the handle's memory waits for the loop's
//   close phase. So no close callback is asked for: two C++->JS calls less per connection.
//
// Both handles may already be reading when the relay starts, and it takes their read callbacks
// from its first turn on: the upstream's since its connect (handle-connect.ts: libuv then registers
// it with epoll once), the downstream's since accept (handle-proxy.ts reads while the upstream
// connects, as Envoy does; what it read, up to EARLY_READ_LIMIT, is the relay's first write).

import type { RelayHooks } from './relay';
import { tcpHandles, uvError, writeReusingReq, WRITE_DONE, WRITE_PENDING, type OwnedWriteReq, type TcpHandle, type TcpHandles } from '../transport/tcp-handle';
import { slotOf } from '../transport/socket-slot';

declare module '../transport/socket-slot' {
  interface SocketSlot {
    /** the relay side this handle is */
    side: Side | null;
  }
}

/** libuv's read size: a read this large says the direction carries bulk. */
const BULK_READ = 64 * 1024;

/** Bytes read from the downstream before the upstream connected: the reader stops at this many. */
export const EARLY_READ_LIMIT = BULK_READ;

/**
 * What was read from the downstream while the upstream connected. Given one, the relay takes the
 * downstream as still reading when `reading` says so, and the upstream as reading since its
 * connect (handle-connect.ts): it starts neither again.
 */
export interface EarlyRead {
  readonly chunks: readonly Buffer[];
  readonly bytes: number;
  /** the downstream's EOF came too (libuv stopped reading it) */
  readonly eof: boolean;
  /** the downstream is still being read (not stopped at EARLY_READ_LIMIT, not failed to start) */
  readonly reading: boolean;
}


/** One end of the relay. */
class Side {
  peer!: Side;
  /** the peer's EOF was passed on as a shutdown of this side (libuv refuses to reset it until the
   * shutdown has run, and without a completion callback the relay does not know when it has) */
  shutdownQueued = false;
  /** EOF read from this side */
  eof = false;
  /** writes to this side still in libuv */
  pendingWrites = 0;
  /** close() or reset() called */
  closing = false;
  closed = false;
  /** this direction's own read buffer, once it carries bulk */
  ownBuffer: Buffer | null = null;

  constructor(readonly relay: HandleRelay, readonly handle: TcpHandle, readonly isDown: boolean) {
    slotOf(handle).side = this;
  }
}

export class HandleRelay {
  bytesFromDownstream = 0;
  bytesFromUpstream = 0;
  private error: Error | null = null;
  private downstreamError = false;
  private firstToFinish: 'downstream' | 'upstream' | null = null;
  private reported = false;
  private readonly down: Side;
  private readonly up: Side;
  private readonly h: TcpHandles;

  constructor(down: TcpHandle, up: TcpHandle, private readonly hooks: RelayHooks) {
    this.h = tcpHandles()!;
    this.down = new Side(this, down, true);
    this.up = new Side(this, up, false);
    this.down.peer = this.up;
    this.up.peer = this.down;
  }

  start(early: EarlyRead | null): void {
    const { down, up } = this;
    down.handle.onread = onRead;
    up.handle.onread = onRead;
    if (early === null) {
      this.startReading(up);
      if (!down.closing) this.startReading(down);
      return;
    }
    this.bytesFromDownstream += early.bytes;
    for (const chunk of early.chunks) this.write(down, chunk);
    if (early.eof) this.eof(down);
    // Not after EOF, and not while a write of the early bytes waits (written() starts it then).
    if (!early.reading && !down.closing && !down.eof && up.pendingWrites === 0) this.startReading(down);
  }

  private startReading(side: Side): void {
    const err = side.handle.readStart();
    if (err !== 0) this.fail(side, uvError(err, 'read'));
  }

  /** Upstream side: EOF seen (for upstream_cx_destroy_remote). */
  get upstreamEnded(): boolean {
    return this.up.eof;
  }

  /** Close both sides now (idle timeout): no reset; the relay reports as usual. */
  abort(): void {
    if (this.firstToFinish === null) this.firstToFinish = 'downstream';
    this.close(this.down);
    this.close(this.up);
  }

  // ---- entry points of the shared handle callbacks at the end of this file

  read(from: Side, arrayBuffer: ArrayBuffer | undefined): Buffer | undefined {
    const n = this.h.readResult();
    if (n > 0) {
      if (from.closing) return undefined;
      if (from.isDown) this.bytesFromDownstream += n;
      else this.bytesFromUpstream += n;
      const own = from.ownBuffer;
      const chunk = own !== null ? (n === own.length ? own : own.subarray(0, n)) : Buffer.from(arrayBuffer!, this.h.readOffset(), n);
      this.write(from, chunk);
      if (own === null && n >= BULK_READ && !from.closing) {
        from.ownBuffer = Buffer.allocUnsafeSlow(BULK_READ);
        from.handle.useUserBuffer(from.ownBuffer);
      }
      return undefined;
    }
    if (n === 0) return undefined;
    if (n === this.h.UV_EOF) this.eof(from);
    else this.fail(from, uvError(n, 'read'));
    return undefined;
  }

  private write(from: Side, chunk: Buffer): void {
    const to = from.peer;
    if (to.closing) return;
    // A write req is reused until a write has to wait in libuv (transport/tcp-handle.ts).
    const r = writeReusingReq(this.h, to.handle, chunk, onWritten, to);
    if (r !== WRITE_PENDING) {
      if (r !== WRITE_DONE) this.fail(to, uvError(r, 'write'));
      return;
    }
    to.pendingWrites++;
    from.handle.readStop();
  }

  written(to: Side, status: number): void {
    to.pendingWrites--;
    if (to.closing) return;
    if (status < 0) {
      this.fail(to, uvError(status, 'write'));
      return;
    }
    if (to.pendingWrites !== 0) return;
    const from = to.peer;
    // Both directions done and the last write to `to` out: the clean end for this side.
    if (from.eof) {
      if (to.eof) this.close(to);
    } else if (!from.closing) this.startReading(from);
  }

  private eof(from: Side): void {
    from.eof = true;
    if (this.firstToFinish === null) this.firstToFinish = from.isDown ? 'downstream' : 'upstream';
    // libuv stopped reading `from` itself at EOF.
    const to = from.peer;
    if (to.closing) return;
    if (to.eof) {
      // The clean end (see the top of this file); a side with writes still pending closes when
      // the last one completes (written()).
      if (to.pendingWrites === 0) this.close(to);
      if (from.pendingWrites === 0) this.close(from);
      return;
    }
    const err = to.handle.shutdown(this.h.newShutdownReq());
    if (err !== 0) this.fail(to, uvError(err, 'shutdown'));
    else to.shutdownQueued = true;
  }

  /** `side` failed: close it, reset its peer (Envoy propagates a reset as a reset). */
  private fail(side: Side, err: Error): void {
    if (this.error === null) {
      this.error = err;
      this.downstreamError = side.isDown;
    }
    if (this.firstToFinish === null) this.firstToFinish = side.isDown ? 'downstream' : 'upstream';
    this.close(side);
    this.reset(side.peer);
  }

  private close(side: Side): void {
    if (side.closing) return;
    side.closing = true;
    side.handle.close();
    this.closed(side);
  }

  private reset(side: Side): void {
    if (side.closing) return;
    side.closing = true;
    // uv_tcp_close_reset refuses (EINVAL) a handle whose shutdown has not run yet (libuv runs it on
    // the next loop turn at the earliest), and Node's TCPWrap counts the handle as closing all the
    // same, so a close() after the refusal is a no-op: the handle would never close. A handle with
    // a shutdown queued is therefore closed plainly: its peer has had our FIN already, and any byte
    // it still sends is answered with an RST by the kernel.
    if (side.shutdownQueued) side.handle.close();
    else side.handle.reset();
    this.closed(side);
  }

  private closed(side: Side): void {
    side.closed = true;
    slotOf(side.handle).side = null;
    side.ownBuffer = null;
    if (this.reported || !this.down.closed || !this.up.closed) return;
    this.reported = true;
    this.hooks.onClose({
      bytesFromDownstream: this.bytesFromDownstream,
      bytesFromUpstream: this.bytesFromUpstream,
      closedBy: this.error !== null ? 'error' : (this.firstToFinish ?? 'downstream'),
      error: this.error,
      downstreamError: this.downstreamError,
    });
  }
}

// Handle and request callbacks shared by every relay: no closure per connection or chunk.
function onRead(this: TcpHandle, arrayBuffer: ArrayBuffer | undefined): Buffer | undefined {
  const side = slotOf(this).side;
  return side === null ? undefined : side.relay.read(side, arrayBuffer);
}
function onWritten(this: OwnedWriteReq<Side>, status: number): void {
  const side = this.owner!;
  this.owner = undefined;
  this.buffer = null;
  side.relay.written(side, status);
}

/**
 * Relay bytes both ways between two connected handles until both are closed, starting with what
 * was read from the downstream before (`early`).
 */
export function relayHandles(down: TcpHandle, up: TcpHandle, hooks: RelayHooks, early: EarlyRead | null = null): HandleRelay {
  const r = new HandleRelay(down, up, hooks);
  r.start(early);
  return r;
}
