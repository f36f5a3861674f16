// The contract between a downstream HTTP request and whoever answers it (the forwarder or a local
// reply). The fast path (h1-server.ts) and the node:http adapter used by the explicit proxy
// listener (node-stream.ts) both implement DownstreamStream, so routing and forwarding exist once.

import type net from 'node:net';
import type { RequestHead } from './h1-head';

/** Callbacks a stream's handler receives; one object per request implements them (no closures). */
export interface StreamHandler {
  /** request body payload (framing removed), after startBody() */
  onBodyData(chunk: Buffer): void;
  onBodyEnd(): void;
  /** the request body was malformed (bad chunked framing) */
  onBodyError(): void;
  /** the downstream socket can take more response bytes */
  onDrain(): void;
  /** the downstream went away (or was reset) before the response ended */
  onAbort(): void;
}

/** Response length marker for respond(): no body and no framing header (1xx/204/304, bodiless HEAD). */
export const NO_BODY = -2;
/** Response length marker for respond(): unknown length (chunked to HTTP/1.1, close-delimited to 1.0). */
export const UNKNOWN_LENGTH = -1;

export interface DownstreamStream {
  readonly head: RequestHead;
  /** the access log's protocol when it is not the head's HTTP/1.x version ('HTTP/2'), else null */
  readonly protocol: string | null;
  handler: StreamHandler | null;
  /** the request carries a body (Content-Length > 0 or chunked) */
  readonly hasBody: boolean;
  /** some body bytes were handed to the handler (a retry would lose them) */
  readonly bodyStarted: boolean;
  readonly headersSent: boolean;
  /** the response ended or the stream was reset */
  readonly finished: boolean;
  /** Start delivering the body to the handler (sends 100 Continue when the client asked for it). */
  startBody(): void;
  /** Read and drop the body (local replies), so the connection can carry the next request. */
  discardBody(): void;
  pauseBody(): void;
  resumeBody(): void;
  /**
   * Send the status line and headers ([name, value, ...], no framing or hop-by-hop headers);
   * `length` >= 0 adds Content-Length, or NO_BODY / UNKNOWN_LENGTH.
   */
  respond(status: number, headers: readonly string[], length: number): void;
  /** false when the caller should wait for onDrain */
  write(chunk: Buffer): boolean;
  /** Bytes given to write() may still be referenced (not yet taken by the kernel): the caller must not reuse them. */
  writePending(): boolean;
  end(): void;
  /**
   * Trailers to send after the body ([name, value, ...]; gRPC's grpc-status). HTTP/2 only: the
   * HTTP/1.1 side drops them, as Envoy's HTTP/1 codec does unless trailers are enabled.
   */
  trailers?(fields: readonly string[]): void;
  /** close the connection after this response (adds `connection: close`); call before respond() */
  closeAfter(): void;
  /** abort: the client sees the connection reset, never a truncated body that looks complete */
  reset(): void;
  /** batch the writes of one upstream read into one syscall */
  cork(): void;
  uncork(): void;
  /**
   * Answer `head` (a complete 101 response head) and hand the connection over as a byte stream
   * (WebSocket and other upgrades); null when this stream cannot (HTTP/2, node:http), which the
   * caller answers as a failed upgrade.
   */
  takeOver(head: string): Upgraded | null;
  /** takeOver() can work here (an HTTP/1.1 connection of our own): upgrades are only offered upstream then */
  readonly canTakeOver: boolean;
}

/** A downstream connection that left HTTP: its socket (paused) and the bytes already read after the request head. */
export interface Upgraded {
  readonly socket: net.Socket;
  readonly head: Buffer | null;
}
