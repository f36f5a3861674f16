// Reads an upstream socket into a buffer this connection owns (net.connect's `onread`), instead of
// Node's default of allocating a fresh 64 KiB backing store per read and shrinking it with realloc.
// For the bulk direction of an egress proxy (upstream -> downstream) that is most of the CPU a
// relay spends outside the syscalls (PERFORMANCE.md §1.5: 0.60 vs 0.73 CPU-s/GB on Node 20).
//
// Only client sockets can do this (`onread` is ignored by net.createServer, nodejs/node#53792), so
// the downstream direction keeps 'data' events.
//
// Ownership rule that makes reuse safe: the buffer is handed to the downstream write as is (no
// copy). If that write does not finish at once (the kernel took only part of it, or earlier writes
// are queued), the bytes still to go live in this buffer, so the relay returns false (Node stops
// reading the socket) and resumes only when the downstream has flushed everything. Node never
// reads into the buffer while reading is stopped, so pending bytes cannot be overwritten.
//
// Size: a connection starts with a small buffer (an idle connection must stay cheap: RSS per idle
// connection is a target) and doubles it whenever a read fills it, up to libuv's 64 KiB read size.
// First buffers are disjoint slices of shared 64 KiB slabs (as Node's own Buffer pool does), so an
// idle connection costs FIRST_BYTES and a view, not a malloc'd backing store of its own.

import type net from 'node:net';

const FIRST_BYTES = 512;
const MAX_BYTES = 64 * 1024;
const SLAB_BYTES = 64 * 1024;

let slab: Buffer = Buffer.allocUnsafeSlow(SLAB_BYTES);
let slabUsed = 0;

/** A FIRST_BYTES buffer no one else is given. */
function firstBuffer(): Buffer {
  if (slabUsed + FIRST_BYTES > SLAB_BYTES) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    slabUsed = 0;
  }
  const b = slab.subarray(slabUsed, slabUsed + FIRST_BYTES);
  slabUsed += FIRST_BYTES;
  return b;
}

/** Receives the reader's bytes once the relay is running. Returns false to stop reading. */
export interface UpstreamSink {
  upstreamBytes(buf: Buffer, n: number): boolean;
}

export class UpstreamReader {
  /** Pass as `onread` to net.connect. */
  readonly onread: net.OnReadOpts;
  private buffer: Buffer;
  private grow = false;
  private sink: UpstreamSink | null = null;
  /** Copies of bytes that arrived before the sink was attached (the buffer is reused at once). */
  private early: Buffer[] | null = null;

  constructor() {
    this.buffer = firstBuffer();
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
    if (sink !== null) return sink.upstreamBytes(buf, n);
    // Not attached yet (bytes raced the connect callback): keep a copy, the buffer is reused.
    (this.early ??= []).push(Buffer.from(buf.subarray(0, n)));
    return true;
  }
}
