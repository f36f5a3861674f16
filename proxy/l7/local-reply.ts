// Envoy's local replies (404 NR, 503 UH/UF/NC, 502 block_all, 400 codec errors, direct responses,
// redirects): the status, Envoy's body text, `content-type: text/plain`, `server: envoy`, and the
// access-log fields that go with them. Bodies are encoded once and kept (they are a small fixed set
// from errors.ts and the compiled routes).

import type { Flag, Rescue } from '../errors';
import type { AccessLogRecord } from '../observe/access-log-record';
import { NO_BODY, type DownstreamStream } from './stream';

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
  if (isGrpc(stream)) {
    sendGrpcLocalReply(stream, record, r.status, r.body, r.flags, r.details);
    return;
  }
  sendLocalReply(stream, record, r.status, r.body, r.flags, r.details);
}

/** A gRPC request (content-type application/grpc, +proto, +json...): its errors are gRPC statuses. */
function isGrpc(stream: DownstreamStream): boolean {
  const raw = stream.head.raw;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 12 && raw[i]!.toLowerCase() === 'content-type') return raw[i + 1]!.toLowerCase().startsWith('application/grpc');
  }
  return false;
}

/** Envoy's Grpc::Utility::httpToGrpcStatus: the gRPC status a local reply's HTTP status stands for. */
export function grpcStatusForHttp(status: number): number {
  switch (status) {
    case 400: return 13; // INTERNAL
    case 401: return 16; // UNAUTHENTICATED
    case 403: return 7; // PERMISSION_DENIED
    case 404: return 12; // UNIMPLEMENTED
    case 429: case 502: case 503: case 504: return 14; // UNAVAILABLE
    default: return 2; // UNKNOWN
  }
}

/**
 * A local reply to a gRPC request, as Envoy sends it: a trailers-only response (HTTP 200,
 * content-type application/grpc, grpc-status and grpc-message in the headers, no body), so a gRPC
 * client sees UNAVAILABLE (14) for a 503 or UNIMPLEMENTED (12) for a 404 NR instead of an HTML
 * body it cannot decode.
 */
function sendGrpcLocalReply(stream: DownstreamStream, record: AccessLogRecord, status: number, message: string, flags: Flag, details: string): void {
  // Envoy's access log shows the :status it sent (200); flags and details say what happened.
  record.responseCode = 200;
  record.addFlag(flags);
  record.responseCodeDetails = details;
  if (stream.headersSent || stream.finished) {
    stream.reset();
    return;
  }
  // HTTP/2: END_STREAM on the HEADERS frame makes it trailers-only; HTTP/1.1 needs a length.
  stream.respond(200, ['server', 'envoy', 'content-type', 'application/grpc', 'grpc-status', String(grpcStatusForHttp(status)), 'grpc-message', encodeURIComponent(message)], stream.protocol === null ? 0 : NO_BODY);
  stream.end();
}
