// tls_inspector on a bare TCP handle (proxy/transport/tcp-handle.ts), for the listeners the TCP fast path
// serves whose chains match on SNI (TLS passthrough by SNI, the egress gateway's main job): read the
// first bytes into inspect.ts's FirstBytesInspector (the same decision, limits and failures as the
// socket inspector), stop reading. The caller then proxies
// the handle with those bytes as the relay's first write (l4/handle-proxy.ts), or wraps it in a
// net.Socket and replays them (dispatch.ts), exactly as the socket inspector's caller does.
//
// The same contract as inspect.ts's: every byte read is in `head`; a FIN before a decision decides
// on what came (`eof` then says libuv stopped reading); nothing read before the FIN, a reset, the
// byte limit or the timeout fail the inspection, and the caller closes the connection. The callback
// never runs synchronously.

import { ProxyErrorCode, type ProxyError } from '../errors';
import { tcpHandles, type TcpHandle } from '../transport/tcp-handle';
import { FirstBytesInspector, type Decided, type Inspection, type InspectOptions } from './inspect';
import { slotOf } from '../transport/socket-slot';

declare module '../transport/socket-slot' {
  interface SocketSlot {
    /** the first-bytes inspector reading this handle */
    inspector: HandleInspector | null;
  }
}

export interface HandleInspection extends Inspection {
  /** the downstream's FIN came with the bytes (libuv stopped reading it) */
  readonly eof: boolean;
}

export type HandleInspectCallback = (err: ProxyError | null, r: HandleInspection | null) => void;

/** The bare-handle transport of inspect.ts's FirstBytesInspector. */
class HandleInspector extends FirstBytesInspector<HandleInspection> {
  constructor(private readonly handle: TcpHandle, opts: InspectOptions, cb: HandleInspectCallback) {
    super(opts, cb);
  }

  start(): void {
    slotOf(this.handle).inspector = this;
    this.handle.onread = onInspectRead;
    if (this.handle.readStart() !== 0) {
      process.nextTick(() => this.fail(ProxyErrorCode.DOWNSTREAM_DISCONNECT, 'downstream closed before sending anything'));
      return;
    }
    this.armTimeout();
  }

  read(arrayBuffer: ArrayBuffer | undefined): void {
    const h = tcpHandles()!;
    const n = h.readResult();
    if (n > 0) this.received(Buffer.from(arrayBuffer!, h.readOffset(), n));
    else if (n === h.UV_EOF) this.ended();
    else if (n < 0) this.fail(ProxyErrorCode.DOWNSTREAM_DISCONNECT, 'downstream error during inspection');
  }

  protected release(): void {
    slotOf(this.handle).inspector = null;
    // After a FIN libuv has stopped reading already.
    if (!this.eof) this.handle.readStop();
  }

  protected result(d: Decided): HandleInspection {
    return { isTls: d.isTls, sni: d.sni, alpn: d.alpn, head: this.head, eof: this.eof };
  }
}

function onInspectRead(this: TcpHandle, arrayBuffer: ArrayBuffer | undefined): undefined {
  slotOf(this).inspector?.read(arrayBuffer);
  return undefined;
}

/** Inspect the first bytes of an accepted handle; `cb` gets the verdict or the failure. */
export function inspectHandle(handle: TcpHandle, opts: InspectOptions, cb: HandleInspectCallback): void {
  new HandleInspector(handle, opts, cb).start();
}
