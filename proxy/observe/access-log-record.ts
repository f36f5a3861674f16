// One access-log entry: an HTTP request or a TCP/TLS connection. All fields are initialised in the
// constructor so V8 keeps one hidden class; the data plane fills them in as the
// exchange proceeds and hands the record to the AccessLog sink when it completes. Field meanings
// are Envoy's command operators; `null` prints as `-`.

import { performance } from 'node:perf_hooks';
import type { RuleSource } from '../../config/compile/snapshot';
import { FLAG, type Flag } from '../errors';

/** `deny`: refused; `would_deny`: refused under --outbound-policy-mode enforce, let through in report mode. */
export type PolicyDecision = 'deny' | 'would_deny';

export class AccessLogRecord {
  /** ms since epoch: START_TIME */
  startTime: number;
  /** high-resolution start for DURATION (performance.now()) */
  startHr: number;
  method: string | null = null;
  /** X-ENVOY-ORIGINAL-PATH?:PATH */
  path: string | null = null;
  /** `HTTP/1.1`; null for TCP */
  protocol: string | null = null;
  /** 0 = no response (TCP, or client gone) */
  responseCode = 0;
  /** `UF,URX` or '-' when empty */
  responseFlags = '-';
  responseCodeDetails: string | null = null;
  connectionTerminationDetails: string | null = null;
  upstreamTransportFailureReason: string | null = null;
  /** downstream body bytes (HTTP) or connection bytes (TCP) */
  bytesReceived = 0;
  bytesSent = 0;
  /** ms; set on completion */
  durationMs = 0;
  /** X-ENVOY-UPSTREAM-SERVICE-TIME: ms until upstream response headers; null = none */
  upstreamServiceTimeMs: number | null = null;
  xForwardedFor: string | null = null;
  userAgent: string | null = null;
  requestId: string | null = null;
  authority: string | null = null;
  /** `ip:port` of the upstream endpoint */
  upstreamHost: string | null = null;
  upstreamCluster: string | null = null;
  upstreamLocalAddress: string | null = null;
  downstreamLocalAddress: string | null = null;
  downstreamRemoteAddress: string | null = null;
  requestedServerName: string | null = null;
  /** DOWNSTREAM_PEER_URI_SAN: the client certificate's URI SAN (SPIFFE id) on terminated mTLS. */
  downstreamPeerUriSan: string | null = null;
  routeName: string | null = null;
  /** `inbound` / `outbound`; null = told by the cluster (see directionOf). */
  direction: 'inbound' | 'outbound' | null = null;
  /**
   * The rule behind the matched HTTP route: an unnamed VirtualService rule has ROUTE_NAME `''`
   * (Envoy prints `-`), so the audit log names the rule by it instead (`vs/ns/name.http.0`).
   */
  routeSource: RuleSource | null = null;
  /**
   * The egress policy's verdict (observe/egress-decision.ts): set by whoever denied (an
   * AuthorizationPolicy), else derived from the catch-all the record went to; null = allowed.
   */
  policyDecision: PolicyDecision | null = null;
  /** Why it was denied (or would be), e.g. `not_in_registry`; null when allowed. */
  policyReason: string | null = null;

  constructor(startTime: number, startHr: number) {
    this.startTime = startTime;
    this.startHr = startHr;
  }

  /** Add a response flag, keeping Envoy's comma-joined form. */
  addFlag(flag: Flag): void {
    if (flag === FLAG.NONE) return;
    this.responseFlags = this.responseFlags === '-' ? flag : this.responseFlags + ',' + flag;
  }
}

/**
 * Which side of the sidecar a record is about: the inbound listener's clusters (`inbound|P||`,
 * InboundPassthroughClusterIpv4) say inbound, everything else outbound, unless the record says.
 */
export function directionOf(r: AccessLogRecord): 'inbound' | 'outbound' {
  if (r.direction !== null) return r.direction;
  const c = r.upstreamCluster;
  return c !== null && (c.startsWith('inbound|') || c === 'InboundPassthroughClusterIpv4') ? 'inbound' : 'outbound';
}

/** What every access-log line says about the downstream side, whatever the protocol. */
export interface DownstreamView {
  readonly localAddress: string;
  readonly remoteAddress: string;
  readonly sni: string | null;
  readonly peerUriSan: string | null;
}

/** A record started now for a downstream connection or request. */
export function recordFor(d: DownstreamView): AccessLogRecord {
  const r = new AccessLogRecord(Date.now(), performance.now());
  r.downstreamLocalAddress = d.localAddress;
  r.downstreamRemoteAddress = d.remoteAddress;
  r.requestedServerName = d.sni;
  r.downstreamPeerUriSan = d.peerUriSan;
  return r;
}

/** Where completed records go. The real one (access-log.ts) formats and writes asynchronously. */
export interface AccessLogSink {
  /**
   * False when log() discards every record: the data plane then makes no records (and reads no
   * socket addresses for them) on paths where that saves per-connection work.
   */
  readonly enabled: boolean;
  log(record: AccessLogRecord): void;
}

export const NULL_ACCESS_LOG: AccessLogSink = { enabled: false, log() {} };
