// Reads an upstream socket into buffers sluice manages (net.connect's `onread`), instead of
// Node's default of allocating a fresh 64 KiB backing store per read and shrinking it with realloc.
// For the bulk direction of an egress proxy (upstream -> downstream) that is most of the CPU a
// relay spends outside the syscalls (0.60 vs 0.73 CPU-s/GB on Node 20).
//
// Only client sockets can do this (`onread` is ignored by net.createServer, nodejs/node#53792), so
// the downstream direction keeps 'data' events.
//
// Ownership rule that makes reuse safe: a connection's own buffer is handed to the downstream
// write as is (no copy). If that write does not finish at once (the kernel took only part of it, or earlier writes
// are queued), the bytes still to go live in this buffer, so the relay returns false (Node stops
// reading the socket) and resumes only when the downstream has flushed everything. Node never
// reads into the buffer while reading is stopped, so pending bytes cannot be overwritten.
//
// Size: an idle connection must stay cheap (RSS per idle proxied connection is a target), so a
// connection owns no buffer until it carries bulk. Until a read fills it, every reader reads into
// one shared scratch buffer, and what lands there is copied out before the callback returns (Node
// reads one socket at a time and hands its bytes to JS at once, so no other socket can read into
// the scratch meanwhile). Small messages thus cost a copy of their few bytes, as Node's default
// read path does anyway; a read that fills the scratch is bulk, and from then on the connection
// reads into a buffer of its own, doubled whenever a read fills it up to libuv's 64 KiB read size,
// and written on without a copy. An idle connection costs no buffer at all (it was 512 B of slab
// and a view each: 0.6 KB of the 3.9 KB an idle proxied connection held, HAProxy holding 3.3).

import type net from 'node:net';

const SCRATCH_BYTES = 16 * 1024;
const MAX_BYTES = 64 * 1024;

/** Every reader's buffer until it owns one: bytes read into it are copied out at once. */
const scratch: Buffer = Buffer.allocUnsafeSlow(SCRATCH_BYTES);

function copyOut(buf: Buffer, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  buf.copy(b, 0, 0, n);
  return b;
}

/** Receives the reader's bytes once the relay is running. Returns false to stop reading. */
export interface UpstreamSink {
  upstreamBytes(buf: Buffer, n: number): boolean;
}

export class UpstreamReader {
  /** Pass as `onread` to net.connect. */
  readonly onread: net.OnReadOpts;
  /** The shared scratch until a read fills it, then this connection's own. */
  private buffer: Buffer;
  private grow = false;
  private sink: UpstreamSink | null = null;
  /** Copies of bytes that arrived before the sink was attached (the buffer is reused at once). */
  private early: Buffer[] | null = null;

  constructor() {
    this.buffer = scratch;
    this.onread = { buffer: this.nextBuffer.bind(this), callback: this.deliver.bind(this) };
  }

  /**
   * Start delivering to `sink`; bytes that arrived earlier go first. Returns false when the sink
   * asked to stop reading while taking them (the caller then must not resume the socket itself).
   */
  attach(sink: UpstreamSink): boolean {
    this.sink = sink;
    const early = this.early;
    this.early = null;
    let reading = true;
    if (early !== null) for (const b of early) reading = sink.upstreamBytes(b, b.length) && reading;
    return reading;
  }

  /** Node calls this once before the first read and after every delivery. */
  private nextBuffer(): Buffer {
    if (this.grow) {
      this.grow = false;
      this.buffer = Buffer.allocUnsafeSlow(Math.min(this.buffer.length * 2, MAX_BYTES));
    }
    return this.buffer;
  }

  private deliver(n: number, buf: Buffer): boolean {
    if (n === buf.length && buf.length < MAX_BYTES) this.grow = true;
    const sink = this.sink;
    if (sink !== null) return buf === scratch ? sink.upstreamBytes(copyOut(buf, n), n) : sink.upstreamBytes(buf, n);
    // Not attached yet (bytes raced the connect callback): keep a copy, the buffer is reused.
    (this.early ??= []).push(copyOut(buf, n));
    return true;
  }
}
