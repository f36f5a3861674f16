// tls_inspector on a bare TCP handle (proxy/l4/tcp-handle.ts), for the listeners the TCP fast path
// serves whose chains match on SNI (TLS passthrough by SNI, the egress gateway's main job): read the
// first bytes, decide with inspect.ts's `decideFirstBytes`, stop reading. The caller then proxies
// the handle with those bytes as the relay's first write (l4/handle-proxy.ts), or wraps it in a
// net.Socket and replays them (dispatch.ts), exactly as the socket inspector's caller does.
//
// The same contract as inspect.ts's: every byte read is in `head`; a FIN before a decision decides
// on what came (`eof` then says libuv stopped reading); nothing read before the FIN, a reset, the
// byte limit or the timeout fail the inspection, and the caller closes the connection. The callback
// never runs synchronously.

import { ProxyError, ProxyErrorCode } from '../errors';
import { tcpHandles, type TcpHandle } from '../l4/tcp-handle';
import { decideFirstBytes, type Inspection, type InspectOptions } from './inspect';

export interface HandleInspection extends Inspection {
  /** the downstream's FIN came with the bytes (libuv stopped reading it) */
  readonly eof: boolean;
}

export type HandleInspectCallback = (err: ProxyError | null, r: HandleInspection | null) => void;

type InspectedHandle = TcpHandle & { sluiceInspector?: HandleInspector };

class HandleInspector {
  private head: Buffer = Buffer.alloc(0);
  private eof = false;
  private done = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly handle: InspectedHandle, private readonly opts: InspectOptions, private readonly cb: HandleInspectCallback) {}

  start(): void {
    this.handle.sluiceInspector = this;
    this.handle.onread = onInspectRead;
    if (this.handle.readStart() !== 0) {
      process.nextTick(() => this.fail(ProxyErrorCode.DOWNSTREAM_DISCONNECT, 'downstream closed before sending anything'));
      return;
    }
    if (this.opts.timeoutMs > 0) this.timer = setTimeout(onInspectTimeout, this.opts.timeoutMs, this);
  }

  read(arrayBuffer: ArrayBuffer | undefined): void {
    if (this.done) return;
    const h = tcpHandles()!;
    const n = h.readResult();
    if (n > 0) {
      const chunk = Buffer.from(arrayBuffer!, h.readOffset(), n);
      // The first read usually holds the whole hello: keep it as is, copy only when more arrive.
      this.head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
      if (this.decide(false)) return;
      if (this.head.length >= this.opts.maxBytes) this.fail(ProxyErrorCode.INSPECT_LIMIT, `no protocol decision within ${this.opts.maxBytes} bytes`);
    } else if (n === h.UV_EOF) {
      this.eof = true;
      if (this.head.length === 0) this.fail(ProxyErrorCode.DOWNSTREAM_DISCONNECT, 'downstream closed before sending anything');
      else this.decide(true);
    } else if (n < 0) {
      this.fail(ProxyErrorCode.DOWNSTREAM_DISCONNECT, 'downstream error during inspection');
    }
  }

  /** True when the inspection is over. */
  private decide(final: boolean): boolean {
    const d = decideFirstBytes(this.head, final, this.opts);
    if (d.kind === 'undecided') return false;
    if (d.kind === 'failed') {
      this.fail(d.code, d.message);
      return true;
    }
    this.finish();
    this.cb(null, { isTls: d.isTls, sni: d.sni, alpn: d.alpn, head: this.head, eof: this.eof });
    return true;
  }

  fail(code: ProxyError['code'], message: string): void {
    if (this.done) return;
    this.finish();
    this.cb(new ProxyError(code, message), null);
  }

  private finish(): void {
    this.done = true;
    this.handle.sluiceInspector = undefined;
    // After a FIN libuv has stopped reading already.
    if (!this.eof) this.handle.readStop();
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  timedOut(): void {
    this.timer = null;
    this.fail(ProxyErrorCode.INSPECT_LIMIT, `no protocol decision within ${this.opts.timeoutMs} ms`);
  }
}

function onInspectRead(this: InspectedHandle, arrayBuffer: ArrayBuffer | undefined): undefined {
  this.sluiceInspector?.read(arrayBuffer);
  return undefined;
}

function onInspectTimeout(i: HandleInspector): void {
  i.timedOut();
}

/** Inspect the first bytes of an accepted handle; `cb` gets the verdict or the failure. */
export function inspectHandle(handle: TcpHandle, opts: InspectOptions, cb: HandleInspectCallback): void {
  new HandleInspector(handle, opts, cb).start();
}
