// VirtualService `mirror` / `mirrors` (Envoy's request_mirror_policies): a shadow copy of the
// request goes to the mirror cluster, fire-and-forget. Its Host gets Envoy's `-shadow` suffix
// (before any port: `a.example:8080` -> `a.example-shadow:8080`); its response is read and dropped;
// it never delays, fails or changes the main exchange. The body is teed: chunks the main exchange
// reads are copied to the shadow, buffered while its connection is not ready or pushes back, and
// the shadow is given up (not the main request) when more than MAX_BUFFERED bytes wait. HTTP/1.1
// and HTTP/2 mirror clusters alike (upstream-pools.ts). The shadow counts in the
// mirror cluster's own upstream_rq_* stats, as Envoy's do.

import type net from 'node:net';
import type { MirrorPolicy } from '../../config/compile/snapshot';
import type { ProxyContext } from '../context';
import type { ProxyError } from '../errors';
import type { UpstreamCluster } from '../upstream/cluster';
import type { UpstreamHost } from '../upstream/host';
import type { ResponseHead, RequestHead } from './h1-head';
import type { PooledRequest, RequestPool, UpstreamHandler } from './h1-upstream';
import { requestPoolFor } from './upstream-pools';

const MAX_BUFFERED = 1 << 20;
/** A shadow with no route timeout still ends: Envoy bounds it by the route timeout; this bounds the rest. */
const SHADOW_TIMEOUT_MS = 60_000;

/** Envoy's shadowAppendedHost. */
export function shadowHost(authority: string): string {
  const close = authority.lastIndexOf(']');
  const colon = authority.lastIndexOf(':');
  if (colon < 0 || colon < close) return authority + '-shadow';
  return authority.slice(0, colon) + '-shadow' + authority.slice(colon);
}

function drawn(percent: number): boolean {
  return percent >= 100 || (percent > 0 && Math.random() * 100 < percent);
}

export class ShadowRequest implements UpstreamHandler {
  private readonly cluster: UpstreamCluster;
  private readonly host: UpstreamHost;
  private readonly pool: RequestPool;
  private readonly headText: string;
  private readonly requestHead: RequestHead;
  private readonly hasBody: boolean;
  private conn: PooledRequest | null = null;
  /** the connection refused more body (backpressure): chunks wait in `waiting` until it drains */
  private blocked = false;
  private waiting: Buffer[] = [];
  private buffered = 0;
  private bodyEnded = false;
  private done = false;
  private rqOpen = false;
  private readonly timer: NodeJS.Timeout;

  constructor(ctx: ProxyContext, cluster: UpstreamCluster, host: UpstreamHost, sni: string | null, headText: string, head: RequestHead, hasBody: boolean, timeoutMs: number) {
    this.cluster = cluster;
    this.host = host;
    this.headText = headText;
    this.requestHead = head;
    this.hasBody = hasBody;
    this.pool = requestPoolFor(cluster, host, sni, ctx.stats);
    this.timer = setTimeout(onShadowTimeout, timeoutMs > 0 ? timeoutMs : SHADOW_TIMEOUT_MS, this);
    this.timer.unref();
    this.pool.acquire(this);
  }

  /** A chunk of the main request's body (borrowed: copied here). */
  body(chunk: Buffer): void {
    if (this.done) return;
    const conn = this.conn;
    if (conn !== null && !this.blocked) {
      if (!conn.writeBody(Buffer.from(chunk))) this.blocked = true;
      return;
    }
    this.buffered += chunk.length;
    if (this.buffered > MAX_BUFFERED) this.giveUp();
    else this.waiting.push(Buffer.from(chunk));
  }

  bodyEnd(): void {
    this.bodyEnded = true;
    if (!this.done && !this.blocked) this.conn?.endRequest();
  }

  /** Write what waited; false when the connection pushed back again. */
  private flush(conn: PooledRequest): boolean {
    const chunks = this.waiting;
    let i = 0;
    while (i < chunks.length) {
      const c = chunks[i++]!;
      this.buffered -= c.length;
      if (!conn.writeBody(c)) {
        this.waiting = chunks.slice(i);
        return false;
      }
    }
    this.waiting = [];
    return true;
  }

  /** The main exchange's client is gone before its body ended: the shadow cannot complete either. */
  giveUp(): void {
    if (this.done) return;
    const conn = this.conn;
    this.conn = null;
    if (conn !== null) conn.abort();
    else this.pool.cancel(this);
    this.end();
  }

  onUpstreamReady(conn: PooledRequest): void {
    if (this.done) {
      conn.pool.release(conn);
      return;
    }
    this.conn = conn;
    this.rqOpen = true;
    this.cluster.stats.upstream_rq_total.inc();
    this.cluster.stats.upstream_rq_active.inc();
    this.host.counters.rq_total++;
    const head = this.requestHead;
    let framing = '';
    if (head.chunked) framing = 'transfer-encoding: chunked\r\n';
    else if (head.contentLength >= 0) framing = 'content-length: ' + head.contentLength + '\r\n';
    conn.begin(this, this.headText + framing + '\r\n', head.method === 'HEAD', head.chunked);
    if (!this.flush(conn)) {
      this.blocked = true;
      return;
    }
    if (!this.hasBody || this.bodyEnded) conn.endRequest();
  }

  onUpstreamConnectError(_err: ProxyError): void {
    this.end();
  }

  onResponseHead(head: ResponseHead): void {
    this.cluster.stats.responseCode(head.status);
  }

  onResponseData(_chunk: Buffer): void {
    // dropped: nobody waits for a shadow's response
  }

  onResponseEnd(): void {
    this.conn = null;
    this.cluster.stats.upstream_rq_completed.inc();
    this.host.counters.rq_success++;
    this.end();
  }

  onResponseError(_err: ProxyError, _retryable: boolean): void {
    this.conn = null;
    this.host.counters.rq_error++;
    this.end();
  }

  onUpgraded(_head: ResponseHead, socket: net.Socket): void {
    // A shadow never asks for an upgrade; a 101 anyway is not followed.
    socket.destroy();
    this.end();
  }

  onUpstreamDrain(): void {
    const conn = this.conn;
    if (this.done || conn === null || !this.blocked) return;
    this.blocked = false;
    if (!this.flush(conn)) {
      this.blocked = true;
      return;
    }
    if (this.bodyEnded) conn.endRequest();
  }
  writePending(): boolean {
    return false;
  }
  cork(): void {}
  uncork(): void {}

  private end(): void {
    if (this.done) return;
    this.done = true;
    this.waiting = [];
    clearTimeout(this.timer);
    if (this.rqOpen) {
      this.rqOpen = false;
      this.cluster.stats.upstream_rq_active.dec();
    }
  }
}

function onShadowTimeout(s: ShadowRequest): void {
  s.giveUp();
}

/**
 * Start the shadows of one request: `headFor(host)` gives the upstream request head (without
 * framing) for a shadow Host. Returns null when none was drawn.
 */
export function startMirrors(
  ctx: ProxyContext, mirrors: readonly MirrorPolicy[], authority: string, sni: string | null, headFor: (host: string) => string,
  head: RequestHead, hasBody: boolean, timeoutMs: number,
): ShadowRequest[] | null {
  let out: ShadowRequest[] | null = null;
  for (const m of mirrors) {
    if (!drawn(m.percent)) continue;
    const cluster = ctx.clusters.get(m.cluster);
    if (cluster === undefined) continue;
    const host = cluster.pick({ sourceIp: '', hashValue: null }, null);
    if (host === null) continue;
    (out ??= []).push(new ShadowRequest(ctx, cluster, host, cluster.originatesTls ? sni : null, headFor(shadowHost(authority)), head, hasBody, timeoutMs));
  }
  return out;
}
