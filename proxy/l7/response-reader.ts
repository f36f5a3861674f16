// Reads an upstream HTTP connection into a buffer of its own (the socket's `onread`) instead of
// Node's default path: a fresh backing store per read, a Buffer pushed through the Readable
// machinery, a 'data' event and a nextTick per read. On the keep-alive fast path that is one of the
// two reads of every request. Over TLS (a TLSSocket opened by tls.connect itself, which honours
// `onread`) the buffer receives the decrypted bytes: TLSWrap copies each SSL_read result into the
// buffer last handed out, in pieces of at most its length, and may deliver several pieces for one
// socket read, so every delivery goes through the same ownership rule below.
//
// Ownership: the bytes handed to the sink are only borrowed. The sink parses what it needs into
// strings, copies what it keeps, and passes body bytes downstream; when it reports that a
// downstream write still holds some of them (the kernel did not take it all, or it is queued), the
// next read goes into a new buffer and the old one is left to that write. So a small response,
// written out at once, costs no allocation at all.
//
// Size: a connection starts small (idle pooled connections stay cheap) and doubles its buffer each
// time a read fills it, up to libuv's 64 KiB read size.

import type net from 'node:net';
import type { UpstreamSink } from '../l4/upstream-reader';
import type { UpstreamSource } from '../l4/relay';

const FIRST_BYTES = 2 * 1024;
const MAX_BYTES = 64 * 1024;

export interface ResponseSink {
  /** `chunk` is valid during the call only. Returns true when a downstream write still references it. */
  upstreamBytes(chunk: Buffer): boolean;
}

export class ResponseReader implements UpstreamSource {
  /** Pass as `onread` to net.connect. */
  readonly onread: net.OnReadOpts;
  sink: ResponseSink | null = null;
  /**
   * After a 101 (l7/upgrade.ts) the connection is a byte relay: its bytes go to the L4 relay, whose
   * `false` stops reading until the downstream has flushed this buffer (l4/upstream-reader.ts's rule).
   */
  private relaySink: UpstreamSink | null = null;
  private buffer: Buffer;
  private next: number;

  constructor() {
    this.buffer = Buffer.allocUnsafeSlow(FIRST_BYTES);
    this.next = 0;
    this.onread = { buffer: this.nextBuffer.bind(this), callback: this.deliver.bind(this) };
  }

  /** UpstreamSource: hand every later read to the L4 relay. */
  attach(sink: UpstreamSink): boolean {
    this.sink = null;
    this.relaySink = sink;
    return true;
  }

  /** Node calls this once before the first read and after every delivery. */
  private nextBuffer(): Buffer {
    if (this.next !== 0) {
      this.buffer = Buffer.allocUnsafeSlow(this.next);
      this.next = 0;
    }
    return this.buffer;
  }

  private deliver(n: number, buf: Buffer): boolean {
    const full = n === buf.length;
    const relay = this.relaySink;
    if (relay !== null) {
      if (full && buf.length < MAX_BYTES) this.next = buf.length * 2;
      return relay.upstreamBytes(buf, n);
    }
    const sink = this.sink;
    // Before the sink is attached nothing was asked for: the pool drops such a connection anyway.
    const retained = sink !== null && sink.upstreamBytes(full ? buf : buf.subarray(0, n));
    if (full && buf.length < MAX_BYTES) this.next = buf.length * 2;
    else if (retained) this.next = buf.length;
    return true;
  }
}
