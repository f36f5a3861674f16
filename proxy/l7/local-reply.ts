// Envoy's local replies (404 NR, 503 UH/UF/NC, 502 block_all, 400 codec errors, direct responses,
// redirects): the status, Envoy's body text, `content-type: text/plain`, `server: envoy`, and the
// access-log fields that go with them. Bodies are encoded once and kept (they are a small fixed set
// from errors.ts and the compiled routes).

import type { Flag, Rescue } from '../errors';
import type { AccessLogRecord } from '../observe/access-log-record';
import type { DownstreamStream } from './stream';

const BODIES = new Map<string, Buffer>();
const MAX_CACHED_BODIES = 1024;

function bodyBuffer(body: string): Buffer {
  let b = BODIES.get(body);
  if (b === undefined) {
    b = Buffer.from(body, 'utf8');
    if (BODIES.size < MAX_CACHED_BODIES) BODIES.set(body, b);
  }
  return b;
}

const PLAIN: readonly string[] = ['server', 'envoy'];
const TEXT: readonly string[] = ['server', 'envoy', 'content-type', 'text/plain'];

/** extraHeaders: [name, value, ...] */
export function sendLocalReply(stream: DownstreamStream, record: AccessLogRecord, status: number, body: string, flags: Flag, details: string, extraHeaders?: readonly string[]): void {
  record.responseCode = status;
  record.addFlag(flags);
  record.responseCodeDetails = details;
  if (stream.headersSent || stream.finished) {
    stream.reset();
    return;
  }
  const b = bodyBuffer(body);
  const base = b.length > 0 ? TEXT : PLAIN;
  stream.respond(status, extraHeaders === undefined ? base : [...base, ...extraHeaders], b.length);
  if (b.length > 0) stream.write(b);
  stream.end();
  record.bytesSent = b.length;
}

export function sendRescue(stream: DownstreamStream, record: AccessLogRecord, r: Rescue): void {
  if (r.status === 0) {
    record.addFlag(r.flags);
    record.responseCodeDetails = r.details;
    stream.reset();
    return;
  }
  sendLocalReply(stream, record, r.status, r.body, r.flags, r.details);
}
