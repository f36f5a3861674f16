// The body the external stand-in serves for GET /politics over HTTPS: deterministic bytes of an exact
// size (default 151654, the size in the seed walkthrough), so a test can check that what came back
// through sidecar and gateway is byte-for-byte what the server sent (compare the sha256).

import { createHash } from 'node:crypto';

export const DEFAULT_POLITICS_BODY_SIZE = 151_654;

const HEAD = '<!DOCTYPE html>\n<html><head><title>politics</title></head><body>\n';
const TAIL = '</body></html>\n';

/** `size` bytes of HTML-looking text; same size -> same bytes. */
export function makePoliticsBody(size: number = DEFAULT_POLITICS_BODY_SIZE): Buffer {
  if (!Number.isInteger(size) || size < 0) throw new Error(`body size must be a non-negative integer: ${size}`);
  const out = Buffer.alloc(size);
  if (size < HEAD.length + TAIL.length) {
    out.fill('x');
    return out;
  }
  let offset = out.write(HEAD, 0, 'latin1');
  const end = size - TAIL.length;
  for (let line = 0; offset < end; line++) {
    const text = `<p>sluice e2e stand-in for edition.cnn.com, line ${line}</p>\n`;
    offset += out.write(text.slice(0, end - offset), offset, 'latin1');
  }
  out.write(TAIL, end, 'latin1');
  return out;
}

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
