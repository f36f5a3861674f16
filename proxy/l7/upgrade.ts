// HTTP/1.1 Upgrade (RFC 9110 §7.8), as Envoy's HCM under Istio does it: Istio sets
// `upgrade_configs: [{upgrade_type: websocket}]` on every HTTP connection manager, so a WebSocket
// handshake is forwarded with its `Connection: upgrade` / `Upgrade: websocket` (hop-by-hop headers
// that are otherwise dropped), and when the upstream answers 101 the downstream and upstream
// connections become one byte relay (l4/relay.ts, the same pipe tcp_proxy uses). The request's
// access-log line is written when the relay ends, with the bytes of both directions; the upstream
// connection, no longer pooled, is counted by upstream/connect.ts's upstream_cx_* as any other.
//
// Other upgrade types are not configured, so Envoy refuses them: 403 with details `upgrade_failed`.
// `h2c` is the exception: Envoy's HTTP/1 codec drops an h2c upgrade offer and serves the request as
// HTTP/1.1 (the client may use h2c prior knowledge instead, which the listeners detect).
// An upstream that does not answer 101 gets its response forwarded as usual.

import type net from 'node:net';
import type { HeaderOps } from '../../config/compile/snapshot';
import { relay, type RelayHooks, type RelayResult } from '../l4/relay';
import { H, type RequestHead, type ResponseHead } from './h1-head';
import { downstreamResponseHeaders } from './headers';
import type { ResponseReader } from './response-reader';
import type { Upgraded } from './stream';

export const UpgradeOffer = {
  /** no Upgrade asked (or an h2c offer, which is dropped) */
  NONE: 0,
  WEBSOCKET: 1,
  /** an upgrade type no upgrade_config allows: 403 upgrade_failed */
  REFUSED: 2,
} as const;
export type UpgradeOfferValue = (typeof UpgradeOffer)[keyof typeof UpgradeOffer];

/** What the request's Upgrade + Connection headers ask for. */
export function upgradeOffer(head: RequestHead): UpgradeOfferValue {
  const conn = head.connection;
  if (conn === null || !/(?:^|[\s,])upgrade(?:$|[\s,])/i.test(conn)) return UpgradeOffer.NONE;
  const value = upgradeHeader(head.raw, head.ids);
  if (value === null) return UpgradeOffer.NONE;
  const v = value.trim().toLowerCase();
  if (v === 'websocket') return UpgradeOffer.WEBSOCKET;
  if (v === 'h2c') return UpgradeOffer.NONE;
  return UpgradeOffer.REFUSED;
}

function upgradeHeader(raw: readonly string[], ids: readonly number[]): string | null {
  for (let i = 0, k = 0; i < raw.length; i += 2, k++) {
    if (ids[k] === H.HOP && raw[i]!.length === 7 && raw[i]!.toLowerCase() === 'upgrade') return raw[i + 1]!;
  }
  return null;
}

/** The hop-by-hop lines an upgrade request carries upstream. */
export const WEBSOCKET_REQUEST_LINES = 'connection: upgrade\r\nupgrade: websocket\r\n';

/** The downstream 101 head: the upstream's end-to-end headers (Sec-WebSocket-Accept...) plus the upgrade pair. */
export function switchingProtocolsHead(head: ResponseHead, ops: HeaderOps | null): string {
  const out = downstreamResponseHeaders(head, ops);
  let text = 'HTTP/1.1 101 Switching Protocols\r\n';
  for (let i = 0; i < out.length; i += 2) text += out[i]! + ': ' + out[i + 1]! + '\r\n';
  return text + 'connection: upgrade\r\nupgrade: ' + (upgradeHeader(head.raw, head.ids) ?? 'websocket') + '\r\n\r\n';
}

/** Who hears about the end of an upgraded connection (the exchange that made it). */
export interface TunnelOwner {
  onTunnelClosed(r: RelayResult): void;
}

class TunnelHooks implements RelayHooks {
  constructor(private readonly owner: TunnelOwner) {}
  onClose(r: RelayResult): void {
    this.owner.onTunnelClosed(r);
  }
}

/**
 * Relay an upgraded connection: `rest` (upstream bytes after its 101) goes down first, then both
 * directions flow until both sides close. Returns the relay's upstream byte count offset (`rest`).
 */
export function relayUpgraded(down: Upgraded, up: net.Socket, reader: ResponseReader, rest: Buffer | null, owner: TunnelOwner): void {
  if (rest !== null) down.socket.write(rest);
  relay(down.socket, up, down.head, new TunnelHooks(owner), reader);
}
