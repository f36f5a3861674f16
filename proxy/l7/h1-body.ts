// HTTP/1.1 message-body framing (RFC 9112 §6–7): exact Content-Length, strict chunked decoding
// (hex size, extensions, CRLF everywhere — a bare LF or a malformed size is an error, not a guess),
// or read-until-close for responses without framing. The decoder hands out sub-arrays of the chunk
// it is given (no copies) through a function called on a target object, so no closure is built per
// request. Trailers are validated and dropped, as Envoy's HTTP/1 codec does by default.

const CR = 0x0d;
const LF = 0x0a;

const enum S { SIZE, SIZE_EXT, SIZE_LF, DATA, DATA_CR, DATA_LF, TRAILER_START, TRAILER_LINE, TRAILER_LF, END_LF, DONE }

import type net from 'node:net';

export const Framing = { NONE: 0, LENGTH: 1, CHUNKED: 2, CLOSE: 3 } as const;
export type FramingValue = (typeof Framing)[keyof typeof Framing];

const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[0x41 + c] = 10 + c;
  HEX[0x61 + c] = 10 + c;
}
/** Bytes allowed in chunk extensions and trailer lines: HTAB, visible ASCII, obs-text. */
const EXT = new Uint8Array(256);
EXT[0x09] = 1;
for (let c = 0x20; c <= 0x7e; c++) EXT[c] = 1;
for (let c = 0x80; c <= 0xff; c++) EXT[c] = 1;

/** Largest chunk size accepted (hex digits beyond this would overflow exact integers). */
const MAX_SIZE_DIGITS = 13;
/** Bound on trailer bytes, as on heads. */
const MAX_TRAILER_BYTES = 60 * 1024;

export type DataFn<T> = (this: T, chunk: Buffer) => void;

export class BodyDecoder {
  framing: FramingValue = Framing.NONE;
  /** LENGTH: bytes still to come; CHUNKED: bytes left in the current chunk. */
  private remaining = 0;
  private state: S = S.DONE;
  private digits = 0;
  private trailerBytes = 0;
  /** Body bytes (payload, without chunk framing) seen so far. */
  received = 0;
  done = true;
  failed = false;

  reset(framing: FramingValue, length: number): void {
    this.framing = framing;
    this.received = 0;
    this.failed = false;
    this.digits = 0;
    this.trailerBytes = 0;
    if (framing === Framing.LENGTH) {
      this.remaining = length;
      this.done = length === 0;
    } else if (framing === Framing.CHUNKED) {
      this.state = S.SIZE;
      this.remaining = 0;
      this.done = false;
    } else {
      this.done = framing === Framing.NONE;
    }
  }

  /**
   * Consume buf[start..end): payload slices go to fn.call(target, slice). Returns the index just past
   * the body's last byte when it ends inside the range, `end` when it needs more, -1 on a framing error.
   */
  decode<T>(buf: Buffer, start: number, end: number, target: T, fn: DataFn<T>): number {
    if (this.done) return start;
    if (this.framing === Framing.CLOSE) {
      this.received += end - start;
      if (end > start) fn.call(target, start === 0 && end === buf.length ? buf : buf.subarray(start, end));
      return end;
    }
    if (this.framing === Framing.LENGTH) {
      const n = Math.min(this.remaining, end - start);
      this.remaining -= n;
      this.received += n;
      if (n > 0) fn.call(target, start === 0 && n === buf.length ? buf : buf.subarray(start, start + n));
      if (this.remaining === 0) this.done = true;
      return start + n;
    }
    return this.decodeChunked(buf, start, end, target, fn);
  }

  private decodeChunked<T>(buf: Buffer, start: number, end: number, target: T, fn: DataFn<T>): number {
    let i = start;
    while (i < end) {
      const c = buf[i]!;
      switch (this.state) {
        case S.SIZE: {
          const v = HEX[c]!;
          if (v >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) return this.fail();
            this.remaining = this.remaining * 16 + v;
            i++;
            break;
          }
          if (this.digits === 0) return this.fail();
          if (c === CR) this.state = S.SIZE_LF;
          else if (c === 0x3b || c === 0x20 || c === 0x09) this.state = S.SIZE_EXT; // ";ext" (BWS allowed)
          else return this.fail();
          i++;
          break;
        }
        case S.SIZE_EXT:
          if (c === CR) this.state = S.SIZE_LF;
          else if (EXT[c] !== 1) return this.fail();
          i++;
          break;
        case S.SIZE_LF:
          if (c !== LF) return this.fail();
          i++;
          this.digits = 0;
          this.state = this.remaining === 0 ? S.TRAILER_START : S.DATA;
          break;
        case S.DATA: {
          const n = Math.min(this.remaining, end - i);
          this.remaining -= n;
          this.received += n;
          fn.call(target, buf.subarray(i, i + n));
          i += n;
          if (this.remaining === 0) this.state = S.DATA_CR;
          break;
        }
        case S.DATA_CR:
          if (c !== CR) return this.fail();
          this.state = S.DATA_LF;
          i++;
          break;
        case S.DATA_LF:
          if (c !== LF) return this.fail();
          this.state = S.SIZE;
          i++;
          break;
        case S.TRAILER_START:
          if (c === CR) {
            this.state = S.END_LF;
            i++;
            break;
          }
          if (c === 0x20 || c === 0x09) return this.fail(); // obs-fold in trailers
          this.state = S.TRAILER_LINE;
          break;
        case S.TRAILER_LINE:
          if (++this.trailerBytes > MAX_TRAILER_BYTES) return this.fail();
          if (c === CR) this.state = S.TRAILER_LF;
          else if (EXT[c] !== 1) return this.fail();
          i++;
          break;
        case S.TRAILER_LF:
          if (c !== LF) return this.fail();
          this.state = S.TRAILER_START;
          i++;
          break;
        case S.END_LF:
          if (c !== LF) return this.fail();
          this.state = S.DONE;
          this.done = true;
          return i + 1;
        default:
          return i;
      }
    }
    return end;
  }

  private fail(): number {
    this.failed = true;
    this.done = true;
    return -1;
  }
}

/** `size CRLF` for a chunk of n bytes: strings for the common sizes are cached. */
const CHUNK_HEADS: string[] = [];
export function chunkHead(n: number): string {
  if (n < 1024) return (CHUNK_HEADS[n] ??= n.toString(16) + '\r\n');
  return n.toString(16) + '\r\n';
}
export const CHUNK_END = '0\r\n\r\n';

/** Buffer#latin1Write: what write(s, offset, length, 'latin1') calls after its argument checks (untyped in @types/node). */
type Latin1WriteBuffer = Buffer & { latin1Write(s: string, offset: number, length: number): number };

/** Up to this body size, head and first body bytes are joined into one Buffer (a copy this small costs less than a writev). */
const JOIN_MAX = 16 * 1024;

/**
 * Write one body chunk of an outgoing message (request upstream or response downstream), preceded
 * by the message's head when it has not gone out yet: one corked batch, so head and first bytes
 * leave in one syscall. Returns the socket's backpressure signal.
 */
export function writeBodyChunk(socket: net.Socket, pendingHead: string | null, chunked: boolean, chunk: Buffer): boolean {
  if (pendingHead !== null && !chunked && chunk.length <= JOIN_MAX) {
    // The common small message: head and body copied into one Buffer and written once. A single
    // Buffer write skips the Writable's cork/writev machinery (a write request and a chunk array
    // per call), which profiled as a tenth of the fast path's JavaScript time.
    const headLength = pendingHead.length;
    const out = Buffer.allocUnsafe(headLength + chunk.length);
    (out as Latin1WriteBuffer).latin1Write(pendingHead, 0, headLength);
    chunk.copy(out, headLength);
    return socket.write(out);
  }
  socket.cork();
  if (pendingHead !== null) socket.write(pendingHead, 'latin1');
  let ok: boolean;
  if (chunked) {
    socket.write(chunkHead(chunk.length), 'latin1');
    socket.write(chunk);
    ok = socket.write('\r\n', 'latin1');
  } else ok = socket.write(chunk);
  socket.uncork();
  return ok;
}

/** End an outgoing message: its head if still pending, and the last chunk when chunked. */
export function endBody(socket: net.Socket, pendingHead: string | null, chunked: boolean): void {
  if (pendingHead !== null) socket.write(chunked ? pendingHead + CHUNK_END : pendingHead, 'latin1');
  else if (chunked) socket.write(CHUNK_END, 'latin1');
}
