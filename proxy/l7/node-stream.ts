// DownstreamStream over a node:http request/response pair. Only the explicit HTTP proxy listener
// (listener/http-proxy.ts, the HTTP_PROXY demo path) still receives requests from node:http; this
// adapter lets them go through the same routing and forwarding as the fast path. Not a hot path.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { H, RequestHead, headerId } from './h1-head';
import { NO_BODY, type DownstreamStream, type StreamHandler } from './stream';

export class NodeStream implements DownstreamStream {
  readonly head: RequestHead;
  readonly hasBody: boolean;
  handler: StreamHandler | null = null;
  bodyStarted = false;
  finished = false;
  readonly protocol = null;
  readonly canTakeOver = false;
  private readonly req: IncomingMessage;
  private readonly res: ServerResponse;
  private close = false;
  /** while it drains, responses close their connection (ProxyContext.draining) */
  private readonly proxy: { readonly draining: boolean } | null;

  constructor(req: IncomingMessage, res: ServerResponse, proxy: { readonly draining: boolean } | null = null) {
    this.req = req;
    this.res = res;
    this.proxy = proxy;
    this.head = headFromNode(req);
    this.hasBody = this.head.chunked || this.head.contentLength > 0;
    res.on('close', this.onClose.bind(this));
    res.on('drain', this.onDrain.bind(this));
  }

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  startBody(): void {
    if (!this.hasBody) {
      this.handler?.onBodyEnd();
      return;
    }
    this.req.on('data', this.onData.bind(this));
    this.req.on('end', this.onEnd.bind(this));
  }
  discardBody(): void {
    this.req.resume();
  }
  pauseBody(): void {
    this.req.pause();
  }
  resumeBody(): void {
    this.req.resume();
  }
  respond(status: number, headers: readonly string[], length: number): void {
    if (this.finished || this.res.headersSent) return;
    const out = headers.slice();
    if (length >= 0) out.push('content-length', String(length));
    else if (length === NO_BODY && status >= 200 && status !== 204 && status !== 304) out.push('content-length', '0');
    if (this.close || this.proxy?.draining === true) out.push('connection', 'close');
    this.res.writeHead(status, out);
  }
  write(chunk: Buffer): boolean {
    return this.finished ? true : this.res.write(chunk);
  }
  writePending(): boolean {
    // What node:http holds before the socket (outputData) plus what the socket holds.
    return this.res.writableLength > 0;
  }
  end(): void {
    if (this.finished) return;
    this.finished = true;
    this.res.end();
    if (!this.req.complete) this.req.resume();
  }
  closeAfter(): void {
    this.close = true;
  }
  reset(): void {
    if (this.finished) return;
    this.finished = true;
    this.res.destroy();
  }
  cork(): void {
    this.res.cork();
  }
  uncork(): void {
    this.res.uncork();
  }
  takeOver(): null {
    // node:http hands upgrade requests to its 'upgrade' event, never to a request handler.
    return null;
  }

  private onData(chunk: Buffer): void {
    this.bodyStarted = true;
    this.handler?.onBodyData(chunk);
  }
  private onEnd(): void {
    this.handler?.onBodyEnd();
  }
  private onDrain(): void {
    this.handler?.onDrain();
  }
  private onClose(): void {
    if (this.finished) return;
    this.finished = true;
    this.handler?.onAbort();
  }
}

function headFromNode(req: IncomingMessage): RequestHead {
  const h = new RequestHead();
  h.method = req.method ?? 'GET';
  h.target = req.url ?? '/';
  h.versionMinor = req.httpVersionMinor === 0 ? 0 : 1;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const id = headerId(name.toLowerCase());
    h.raw.push(name, value);
    h.ids.push(id);
    if (id === H.HOST) h.host ??= value;
    else if (id === H.CONTENT_LENGTH) h.contentLength = Number(value);
    else if (id === H.TRANSFER_ENCODING) h.chunked = true;
    else if (id === H.CONNECTION) h.connection = h.connection === null ? value : h.connection + ', ' + value;
    else if (id === H.USER_AGENT) h.userAgent ??= value;
    else if (id === H.X_REQUEST_ID) h.requestId ??= value;
    else if (id === H.X_FORWARDED_FOR) h.xff = h.xff === null ? value : h.xff + ', ' + value;
    else if (id === H.X_FORWARDED_PROTO) h.xfp ??= value;
  }
  return h;
}
