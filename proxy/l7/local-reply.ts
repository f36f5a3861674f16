// Envoy's local replies (404 NR, 503 UH/UF/NC, 502 block_all, 400 codec errors, direct responses,
// redirects): the status, Envoy's body text, `content-type: text/plain`, `server: envoy`-style
// headers, and the access-log fields that go with them.

import type { ServerResponse } from 'node:http';
import type { Rescue } from '../errors';
import type { AccessLogRecord } from '../observe/access-log-record';

export function sendLocalReply(res: ServerResponse, record: AccessLogRecord, status: number, body: string, flags: string, details: string, extraHeaders?: Record<string, string>): void {
  record.responseCode = status;
  record.addFlag(flags);
  record.responseCodeDetails = details;
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const headers: Record<string, string | number> = { 'content-length': Buffer.byteLength(body), 'server': 'envoy', ...extraHeaders };
  if (body.length > 0) headers['content-type'] = 'text/plain';
  res.writeHead(status, headers);
  res.end(body);
  record.bytesSent = Buffer.byteLength(body);
}

export function sendRescue(res: ServerResponse, record: AccessLogRecord, r: Rescue): void {
  if (r.status === 0) {
    record.addFlag(r.flags);
    record.responseCodeDetails = r.details;
    res.destroy();
    return;
  }
  sendLocalReply(res, record, r.status, r.body, r.flags, r.details);
}
