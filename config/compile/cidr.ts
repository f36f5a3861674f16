// CIDR parsing (compile time) and containment (per connection). Containment of an IPv4 address,
// the common case, parses the dotted quad in place without allocating.

import type { Cidr } from './snapshot';
import { isIP } from 'node:net';

function parseV4(ip: string): number {
  // Returns the address as an unsigned 32-bit number, or -1 when `ip` is not a dotted quad.
  let value = 0;
  let octet = -1;
  let dots = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46 /* . */) {
      if (octet < 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = -1;
      dots++;
    } else if (c >= 48 && c <= 57) {
      octet = octet < 0 ? c - 48 : octet * 10 + (c - 48);
      if (octet > 255) return -1;
    } else return -1;
  }
  if (dots !== 3 || octet < 0) return -1;
  return value * 256 + octet;
}

function expandV6(ip: string): number[] | null {
  // IPv4-mapped / embedded tail (`::ffff:1.2.3.4`): turn the last quad into two groups.
  let text = ip;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = parseV4(tail);
    if (v4 < 0) return null;
    text = text.slice(0, lastColon + 1) + ((v4 >>> 16) & 0xffff).toString(16) + ':' + (v4 & 0xffff).toString(16);
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const rest = halves.length === 2 ? (halves[1] === '' ? [] : halves[1]!.split(':')) : [];
  const missing = 8 - head.length - rest.length;
  if ((halves.length === 1 && missing !== 0) || missing < 0) return null;
  const groups = [...head, ...new Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest];
  const bytes: number[] = [];
  for (const g of groups) {
    if (!/^[0-9a-f]{1,4}$/i.test(g)) return null;
    const n = parseInt(g, 16);
    bytes.push(n >> 8, n & 0xff);
  }
  return bytes.length === 16 ? bytes : null;
}

/** Parse `198.18.0.0/15`, `2001:db8::/32`, or a bare address (`/32`, `/128`). Null if invalid. */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const family = isIP(addr);
  if (family === 0) return null;
  const max = family === 4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const b = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(b)) return null;
    bits = Number(b);
    if (bits > max) return null;
  }
  let bytes: number[];
  if (family === 4) {
    const v = parseV4(addr);
    bytes = [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
  } else {
    const b6 = expandV6(addr.toLowerCase());
    if (b6 === null) return null;
    bytes = b6;
  }
  // Store the network address (host bits cleared) so containment compares prefixes only.
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    bytes[i] = bytes[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return { text, family: family as 4 | 6, bits, bytes };
}

/** True for a literal IP address without a prefix length (a ServiceEntry VIP). */
export function isPlainIp(text: string): boolean {
  return !text.includes('/') && isIP(text) !== 0;
}

export function cidrContains(c: Cidr, ip: string): boolean {
  if (c.family === 4) {
    let v = parseV4(ip);
    if (v < 0 && ip.startsWith('::ffff:')) v = parseV4(ip.slice(7)); // dual-stack sockets report v4 this way
    if (v < 0) return false;
    if (c.bits === 0) return true;
    const b = c.bytes;
    const net = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
    const shift = 32 - c.bits;
    // >>> on 32 bits is mod 32, so a /32 (shift 0) compares the whole address.
    return shift === 0 ? v === net : (v >>> shift) === (net >>> shift);
  }
  if (isIP(ip) !== 6) return false;
  const bytes = expandV6(ip.toLowerCase());
  if (bytes === null) return false;
  let bits = c.bits;
  for (let i = 0; i < 16 && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((bytes[i]! & mask) !== c.bytes[i]) return false;
  }
  return true;
}
