// The nat rules of istio-iptables in REDIRECT mode, as iptables-restore input. Same chains, same order, same
// matches as Istio's golden files (istio/istio tools/istio-iptables/pkg/capture/testdata/*.golden, logic in
// capture/run.go), minus what sluice does not do (TPROXY, DNS capture, HBONE, virtual interfaces).
// Why the order matters, top to bottom of ISTIO_OUTPUT:
//   1. excluded ports        RETURN  "must be applied before connections back to self are redirected"
//   2. 127.0.0.6 on lo       RETURN  source address of the inbound passthrough cluster
//   3. proxy -> own VIP      ISTIO_IN_REDIRECT (hairpin: app -> proxy(out) -> proxy(in) -> app)
//   4. app -> 127/8 on lo    ISTIO_REDIRECT, but 127.0.0.1: loopback VIPs (the seed's 127.255.0.2 for
//                            httpbin.bar.global) are caught, as Istio 1.1's `-o lo ! -d 127.0.0.1`
//                            rule caught them; IPv4 only
//      app -> app on lo      RETURN  (unless loopback is explicitly included)
//   5. proxy UID/GID         RETURN  the proxy's own upstream connections are never recaptured (no loop)
//   6. 127.0.0.1             RETURN  localhost-aware apps and container-to-container traffic
//   7. excluded CIDRs        RETURN  before inclusions
//   8. included CIDRs / '*'  ISTIO_REDIRECT -> outbound port

import type { CaptureOptions } from './options';

/** The nat chains sluice creates, and so the only chains `cleanRules` deletes. */
export const CAPTURE_CHAINS = ['ISTIO_INBOUND', 'ISTIO_REDIRECT', 'ISTIO_IN_REDIRECT', 'ISTIO_OUTPUT'] as const;

/** HBONE (Istio ambient/waypoint) tunnel port: Istio always lets it through, so do we, to coexist. */
export const INBOUND_TUNNEL_PORT = 15008;

interface FamilyConstants {
  /** Source of InboundPassthroughCluster connections (Istio binds 127.0.0.6 / ::6). */
  readonly passthroughSource: string;
  readonly loopback: string;
  readonly family: 4 | 6;
}

const V4: FamilyConstants = { passthroughSource: '127.0.0.6/32', loopback: '127.0.0.1/32', family: 4 };

const V6: FamilyConstants = { passthroughSource: '::6/128', loopback: '::1/128', family: 6 };

function familyOf(cidr: string): 4 | 6 {
  return cidr.includes(':') ? 6 : 4;
}

function isLoopbackCidr(cidr: string): boolean {
  return cidr.startsWith('127.') || cidr === '::1/128';
}

function build(o: CaptureOptions, fam: FamilyConstants): string {
  const rules: string[] = ['*nat'];
  for (const chain of CAPTURE_CHAINS) rules.push(`-N ${chain}`);
  rules.push(
    `-A ISTIO_INBOUND -p tcp --dport ${INBOUND_TUNNEL_PORT} -j RETURN`,
    `-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports ${o.outboundPort}`,
    `-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports ${o.inboundPort}`,
  );

  // Inbound: no PREROUTING jump at all when nothing is captured (istio: InboundPortsInclude == "").
  if (o.inboundPorts === '*') {
    rules.push('-A PREROUTING -p tcp -j ISTIO_INBOUND');
    for (const port of o.excludeInboundPorts) rules.push(`-A ISTIO_INBOUND -p tcp --dport ${port} -j RETURN`);
    rules.push('-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT');
  } else if (o.inboundPorts.length > 0) {
    rules.push('-A PREROUTING -p tcp -j ISTIO_INBOUND');
    for (const port of o.inboundPorts) rules.push(`-A ISTIO_INBOUND -p tcp --dport ${port} -j ISTIO_IN_REDIRECT`);
  }

  // Outbound. The OUTPUT jump has no `-p tcp` (Istio >= 1.21): UDP passes through ISTIO_OUTPUT too, and
  // ISTIO_REDIRECT itself only matches TCP.
  rules.push('-A OUTPUT -j ISTIO_OUTPUT');
  for (const port of o.excludeOutboundPorts) {
    rules.push(`-A ISTIO_OUTPUT -p tcp --dport ${port} -j RETURN`, `-A ISTIO_OUTPUT -p udp --dport ${port} -j RETURN`);
  }
  rules.push(`-A ISTIO_OUTPUT -o lo -s ${fam.passthroughSource} -j RETURN`);

  const includes = o.includeOutboundCidrs;
  const wildcard = includes.length === 1 && includes[0] === '*';
  const loopbackIncluded = !wildcard && includes.some(isLoopbackCidr);
  const owners: Array<['--uid-owner' | '--gid-owner', number]> = [['--uid-owner', o.proxyUid], ['--gid-owner', o.proxyGid]];
  if (o.redirectDns) {
    // DNS capture (Istio's ISTIO_META_DNS_CAPTURE with --capture-all-dns): the app's queries, UDP and
    // TCP, to any server go to the sidecar's DNS proxy; the proxy's own (forwarded) queries do not.
    for (const proto of ['udp', 'tcp']) {
      for (const [match, id] of owners) rules.push(`-A ISTIO_OUTPUT -p ${proto} --dport 53 -m owner ${match} ${id} -j RETURN`);
      rules.push(`-A ISTIO_OUTPUT -p ${proto} --dport 53 -j REDIRECT --to-ports ${o.dnsPort}`);
    }
  }
  // 127.0.0.1 itself is never a VIP: say so before the loopback-VIP rules below.
  const loopbackVips = fam.family === 4 && wildcard;
  if (loopbackVips) rules.push(`-A ISTIO_OUTPUT -o lo -d ${fam.loopback} -j RETURN`);
  for (const [match, id] of owners) {
    rules.push(`-A ISTIO_OUTPUT -o lo ! -d ${fam.loopback} -p tcp ! --dport ${INBOUND_TUNNEL_PORT} -m owner ${match} ${id} -j ISTIO_IN_REDIRECT`);
    if (loopbackVips) rules.push(`-A ISTIO_OUTPUT -o lo -d 127.0.0.0/8 -p tcp -m owner ! ${match} ${id} -j ISTIO_REDIRECT`);
    if (!loopbackIncluded) rules.push(`-A ISTIO_OUTPUT -o lo -m owner ! ${match} ${id} -j RETURN`);
    rules.push(`-A ISTIO_OUTPUT -m owner ${match} ${id} -j RETURN`);
  }

  rules.push(`-A ISTIO_OUTPUT -d ${fam.loopback} -j RETURN`);
  for (const cidr of o.excludeOutboundCidrs) {
    if (familyOf(cidr) === fam.family) rules.push(`-A ISTIO_OUTPUT -d ${cidr} -j RETURN`);
  }
  if (wildcard) {
    rules.push('-A ISTIO_OUTPUT -j ISTIO_REDIRECT');
  } else {
    for (const cidr of includes) {
      if (familyOf(cidr) === fam.family) rules.push(`-A ISTIO_OUTPUT -d ${cidr} -j ISTIO_REDIRECT`);
    }
  }
  rules.push('COMMIT');
  return rules.join('\n') + '\n';
}

/** iptables-restore input (nat table, IPv4). Apply with `iptables-restore --noflush` after `cleanRules`. */
export function buildRules(o: CaptureOptions): string {
  return build(o, V4);
}

/** ip6tables-restore input: same rules with ::6 / ::1 and the IPv6 CIDRs. */
export function buildIp6Rules(o: CaptureOptions): string {
  return build(o, V6);
}

/**
 * iptables-restore input that removes exactly what `buildRules` added, given the current `iptables-save -t nat`
 * text: every rule of a built-in chain that jumps to one of our chains, then our chains (flushed, deleted).
 * Chains not present are skipped, so it is a no-op (an empty string) on a clean table.
 */
export function buildCleanRules(natSave: string): string {
  const ours = new Set<string>(CAPTURE_CHAINS);
  const present = new Set<string>();
  const jumps: string[] = [];
  for (const line of natSave.split('\n')) {
    if (line.startsWith(':')) {
      const chain = line.slice(1).split(' ')[0];
      if (ours.has(chain)) present.add(chain);
      continue;
    }
    if (!line.startsWith('-A ')) continue;
    const chain = line.split(' ')[1];
    if (ours.has(chain)) continue; // goes away with -F below
    const target = / -j (\S+)$/.exec(line);
    if (target !== null && ours.has(target[1])) jumps.push('-D ' + line.slice(3));
  }
  if (present.size === 0 && jumps.length === 0) return '';
  const out = ['*nat', ...jumps];
  // Flush all before deleting any: our chains jump to each other (ISTIO_OUTPUT -> ISTIO_REDIRECT).
  for (const chain of CAPTURE_CHAINS) if (present.has(chain)) out.push(`-F ${chain}`);
  for (const chain of CAPTURE_CHAINS) if (present.has(chain)) out.push(`-X ${chain}`);
  out.push('COMMIT');
  return out.join('\n') + '\n';
}
