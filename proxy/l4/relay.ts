// The L4 byte pipe between a downstream and an upstream socket (Envoy's tcp_proxy data path).
//
// Hand-written rather than pipe()/pipeline(): pipe() does not propagate a
// destroy (nodejs/node#19288) nor carry a half-close on its own, and pipeline() costs ~50% more
// CPU per connection for its eos/finished machinery. What this does, per direction:
//   'data' -> peer.write(); write() === false -> pause() the source; peer 'drain' -> resume().
// So at most one read chunk (<= 64 KiB libuv read) sits above the peer's highWaterMark in user
// memory, whatever the speed difference between the two ends.
//
// Lifecycle rules (both sockets MUST be created with allowHalfOpen: true, else Node ends the
// writable side itself on FIN and a half-close cannot be carried):
// - FIN from one side ('end')       -> end() the other side's writable (TCP half-close), keep
//                                      relaying the other direction.
// - both directions ended           -> each socket closes itself once its writes are flushed.
// - 'error' on one side             -> the other side is reset (RST via resetAndDestroy) so a
//                                      reset propagates as a reset, as Envoy does.
// - 'close' on one side that is not the clean end of both directions (destroyed locally, idle
//   timeout by the caller...) -> destroy() the other side.
// - hooks.onClose fires exactly once, after BOTH sockets have emitted 'close'.
// No timers here: idle timeouts belong to the caller (tcp_proxy idle_timeout), which watches the
// byte counts and calls abort().
//
// Sockets may already be paused (inspect leaves them so) and may already have seen 'end'
// (a client that sent its hello and half-closed); both are honoured at start.
//
// With an UpstreamReader (plain TCP upstreams), the upstream -> downstream direction reads into a
// buffer the connection owns and writes it on without a copy; the reader's file says why that is
// safe: the upstream is not read again until the downstream has flushed that buffer.

import type net from 'node:net';
import tls from 'node:tls';
import { slotOf } from '../transport/socket-slot';
import type { UpstreamSink } from './upstream-reader';

declare module '../transport/socket-slot' {
  interface SocketSlot {
    /** the relay joining this socket to its peer */
    relay: Relay | null;
  }
}

/**
 * Where the upstream's bytes come from when the socket was opened with its own `onread` (no 'data'
 * events): l4's UpstreamReader, or an upgraded HTTP connection's reader (l7/response-reader.ts).
 * `attach` starts delivery and returns false when the sink asked to stop reading meanwhile.
 */
export interface UpstreamSource { attach(sink: UpstreamSink): boolean }

export interface RelayHooks { onClose(r: RelayResult): void }

export interface RelayResult {
  readonly bytesFromDownstream: number;
  readonly bytesFromUpstream: number;
  /** Who ended or closed first; 'error' when either side failed. */
  readonly closedBy: 'downstream' | 'upstream' | 'error';
  /** The first error seen on either socket. */
  readonly error: Error | null;
  /** The first error came from the downstream socket (Envoy flag DC rather than UC). */
  readonly downstreamError: boolean;
}

/** Reset (RST) a plain TCP socket; TLS sockets cannot be reset from JS, so they are destroyed. */
function resetSocket(s: net.Socket): void {
  if (s.destroyed) return;
  if (s instanceof tls.TLSSocket) {
    s.destroy();
    return;
  }
  try {
    s.resetAndDestroy();
  } catch {
    // Not a TCP handle (e.g. a pipe or a custom Duplex wrapped as a Socket): no RST possible.
    s.destroy();
  }
}

export class Relay implements UpstreamSink {
  bytesFromDownstream = 0;
  bytesFromUpstream = 0;
  private error: Error | null = null;
  private downstreamError = false;

  private firstToFinish: 'downstream' | 'upstream' | null = null;
  private downEnded = false;
  private upEnded = false;
  private downClosed = false;
  private upClosed = false;
  private reported = false;
  /** The reader's buffer is still being written downstream: do not read the upstream again yet. */
  private upBufferBusy = false;

  /** The one per-relay closure: write() callbacks get no `this`. */
  private readonly onDownWritten: () => void;

  constructor(
    private readonly down: net.Socket,
    private readonly up: net.Socket,
    private readonly hooks: RelayHooks,
    private readonly reader: UpstreamSource | null = null,
  ) {
    this.onDownWritten = this.downWritten.bind(this);
  }

  start(head: Buffer | null): void {
    const { down, up } = this;
    slotOf(down).relay = this;
    slotOf(up).relay = this;
    down.on('data', onDownData);
    down.on('drain', onDownDrain);
    down.on('end', onDownEnd);
    down.on('error', onDownError);
    down.on('close', onDownClose);
    if (this.reader === null) up.on('data', onUpData);
    up.on('drain', onUpDrain);
    up.on('end', onUpEnd);
    up.on('error', onUpError);
    up.on('close', onUpClose);

    // A socket that already closed will not emit 'close' again; one being destroyed still will.
    if (down.closed) this.downClosed = true;
    if (up.closed) this.upClosed = true;
    if (down.destroyed || up.destroyed) {
      this.firstToFinish = down.destroyed ? 'downstream' : 'upstream';
      this.destroyBoth();
      this.maybeReport();
      return;
    }

    let downPaused = false;
    if (head !== null && head.length > 0) {
      this.bytesFromDownstream += head.length;
      downPaused = !up.write(head);
    }
    const upReading = this.reader === null || this.reader.attach(this);
    // inspect() may have seen the FIN already: that 'end' will not be emitted again.
    if (down.readableEnded) this.downEnd();
    if (up.readableEnded) this.upEnd();
    if (!downPaused) down.resume();
    if (upReading) up.resume();
  }

  /** UpstreamSink: bytes read into the reader's buffer; false stops reading until it is flushed. */
  upstreamBytes(buf: Buffer, n: number): boolean {
    this.bytesFromUpstream += n;
    const down = this.down;
    down.write(n === buf.length ? buf : buf.subarray(0, n), this.onDownWritten);
    // Written to the kernel in full at once (the common case): the buffer is free again.
    if (down.writableLength === 0) return true;
    this.upBufferBusy = true;
    return false;
  }

  /** A downstream write finished; once nothing is pending, the reader's buffer is free. */
  private downWritten(): void {
    if (!this.upBufferBusy || this.down.writableLength !== 0) return;
    this.upBufferBusy = false;
    if (!this.up.destroyed) this.up.resume();
  }

  // downData .. upClose: entry points of the shared socket listeners at the end of this file
  // (public only so those module-level functions can call them; not an API).
  downData(chunk: Buffer): void {
    this.bytesFromDownstream += chunk.length;
    if (!this.up.write(chunk)) this.down.pause();
  }

  upData(chunk: Buffer): void {
    this.bytesFromUpstream += chunk.length;
    if (!this.down.write(chunk)) this.up.pause();
  }

  upDrain(): void { this.down.resume(); }
  downDrain(): void {
    // With a reader, downWritten resumes (this 'drain' comes just before it, same flush).
    if (!this.upBufferBusy) this.up.resume();
  }

  downEnd(): void {
    if (this.downEnded) return;
    this.downEnded = true;
    if (this.firstToFinish === null) this.firstToFinish = 'downstream';
    this.up.end();
  }

  upEnd(): void {
    if (this.upEnded) return;
    this.upEnded = true;
    if (this.firstToFinish === null) this.firstToFinish = 'upstream';
    this.down.end();
  }

  downError(err: Error): void {
    if (this.error === null) {
      this.error = err;
      this.downstreamError = true;
    }
    resetSocket(this.up);
  }

  upError(err: Error): void {
    if (this.error === null) this.error = err;
    resetSocket(this.down);
  }

  downClose(): void {
    this.downClosed = true;
    if (this.firstToFinish === null) this.firstToFinish = 'downstream';
    // A close that is not the clean end of both directions tears the other side down.
    if (!(this.downEnded && this.upEnded)) this.destroyOther(this.up);
    this.maybeReport();
  }

  upClose(): void {
    this.upClosed = true;
    if (this.firstToFinish === null) this.firstToFinish = 'upstream';
    if (!(this.downEnded && this.upEnded)) this.destroyOther(this.down);
    this.maybeReport();
  }

  private destroyOther(other: net.Socket): void {
    if (this.error !== null) resetSocket(other);
    else if (!other.destroyed) other.destroy();
  }

  private destroyBoth(): void {
    if (!this.down.destroyed) this.down.destroy();
    if (!this.up.destroyed) this.up.destroy();
  }

  /** Close both sides now (idle timeout, drain): no reset, the relay reports as usual. */
  abort(): void {
    if (this.firstToFinish === null) this.firstToFinish = 'downstream';
    this.destroyBoth();
  }

  private maybeReport(): void {
    if (this.reported || !this.downClosed || !this.upClosed) return;
    this.reported = true;
    const { down, up } = this;
    down.removeListener('data', onDownData);
    down.removeListener('drain', onDownDrain);
    down.removeListener('end', onDownEnd);
    down.removeListener('close', onDownClose);
    up.removeListener('data', onUpData);
    up.removeListener('drain', onUpDrain);
    up.removeListener('end', onUpEnd);
    up.removeListener('close', onUpClose);
    // The 'error' listeners stay: a late error on a closed socket must not crash the process.
    // A plain result (one object per connection), not `this`: loggers must not reach the sockets.
    this.hooks.onClose({
      bytesFromDownstream: this.bytesFromDownstream,
      bytesFromUpstream: this.bytesFromUpstream,
      closedBy: this.error !== null ? 'error' : (this.firstToFinish ?? 'downstream'),
      error: this.error,
      downstreamError: this.downstreamError,
    });
  }
}

// Socket event handlers shared by every relay (socket-slot.ts says why): `this` is the socket.
function onDownData(this: net.Socket, chunk: Buffer): void { slotOf(this).relay!.downData(chunk); }
function onUpData(this: net.Socket, chunk: Buffer): void { slotOf(this).relay!.upData(chunk); }
function onDownDrain(this: net.Socket): void { slotOf(this).relay!.downDrain(); }
function onUpDrain(this: net.Socket): void { slotOf(this).relay!.upDrain(); }
function onDownEnd(this: net.Socket): void { slotOf(this).relay!.downEnd(); }
function onUpEnd(this: net.Socket): void { slotOf(this).relay!.upEnd(); }
function onDownError(this: net.Socket, err: Error): void { slotOf(this).relay!.downError(err); }
function onUpError(this: net.Socket, err: Error): void { slotOf(this).relay!.upError(err); }
function onDownClose(this: net.Socket): void { slotOf(this).relay!.downClose(); }
function onUpClose(this: net.Socket): void { slotOf(this).relay!.upClose(); }

/**
 * Relay bytes both ways until both sides are closed. `head` (bytes already read from the
 * downstream, e.g. by inspect()) is written to the upstream first; it counts as downstream bytes.
 */
export function relay(downstream: net.Socket, upstream: net.Socket, head: Buffer | null, hooks: RelayHooks, reader: UpstreamSource | null = null): Relay {
  const r = new Relay(downstream, upstream, hooks, reader);
  r.start(head);
  return r;
}
