// IPv4 checks for the topology: every address a test assigns must sit in 198.18.0.0/15 (RFC 2544,
// reserved for benchmarking), so no test can ever send a packet to a real-world host by mistake.

export interface Cidr {
  base: number; // network address as an unsigned 32-bit integer
  prefix: number;
}

const BENCHMARK_NET: Cidr = { base: ipv4ToInt('198.18.0.0'), prefix: 15 };

export function ipv4ToInt(address: string): number {
  const parts = address.split('.');
  if (parts.length !== 4) throw new Error(`e2e: not an IPv4 address: ${address}`);
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) throw new Error(`e2e: not an IPv4 address: ${address}`);
    n = n * 256 + Number(p);
  }
  return n;
}

export function parseCidr(cidr: string): Cidr {
  const [addr, len] = cidr.split('/');
  const prefix = Number(len);
  if (addr === undefined || len === undefined || !Number.isInteger(prefix) || prefix < 1 || prefix > 32) {
    throw new Error(`e2e: not an IPv4 CIDR: ${cidr}`);
  }
  return { base: ipv4ToInt(addr), prefix };
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function cidrContains(cidr: Cidr, address: string): boolean {
  const mask = maskOf(cidr.prefix);
  return ((ipv4ToInt(address) & mask) >>> 0) === ((cidr.base & mask) >>> 0);
}

/** Throws unless `address` (an IPv4 address or a CIDR) lies inside 198.18.0.0/15. */
export function assertBenchmarkAddress(address: string, what: string): void {
  const c = address.includes('/') ? parseCidr(address) : { base: ipv4ToInt(address), prefix: 32 };
  const ok = c.prefix >= BENCHMARK_NET.prefix && cidrContains(BENCHMARK_NET, intToIpv4(c.base));
  if (!ok) throw new Error(`e2e: ${what} ${address} is outside 198.18.0.0/15; tests may only use benchmark addresses`);
}

export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}
