// VirtualService `fault` as Envoy's fault filter applies it (Istio puts the filter before the
// router): per request, a delay is drawn with its percentage and, after the delay, an abort with
// its own. A delayed request is logged `DI`, an aborted one `FI` with details `fault_filter_abort`
// and Envoy's body `fault filter abort`; an abort by gRPC status answers HTTP 200 with
// `content-type: application/grpc` and `grpc-status` (a trailers-only gRPC reply). Stats:
// `http.<prefix>.fault.delays_injected` and `fault.aborts_injected`.

import type { FaultPolicy } from '../../config/compile/snapshot';
import { ProxyErrorCode, rescueFor } from '../errors';
import type { AccessLogRecord } from '../observe/access-log-record';
import { sanitizeStatSegment, type Counter, type StatsStore } from '../observe/stats';
import { sendLocalReply } from './local-reply';
import type { DownstreamStream } from './stream';

export interface FaultDecision {
  /** 0 = no delay */
  readonly delayMs: number;
  readonly abort: FaultPolicy['abort'];
}

function drawn(percent: number): boolean {
  return percent >= 100 || (percent > 0 && Math.random() * 100 < percent);
}

/** What the fault filter does to this request; null = nothing. */
export function drawFault(f: FaultPolicy): FaultDecision | null {
  const delayMs = f.delay !== null && drawn(f.delay.percent) ? f.delay.ms : 0;
  const abort = f.abort !== null && drawn(f.abort.percent) ? f.abort : null;
  return delayMs === 0 && abort === null ? null : { delayMs, abort };
}

/** Answer the request as the fault's abort says. */
export function sendFaultAbort(stream: DownstreamStream, record: AccessLogRecord, abort: NonNullable<FaultPolicy['abort']>): void {
  const r = rescueFor(ProxyErrorCode.FAULT_ABORT);
  if (abort.grpcStatus !== null) {
    stream.discardBody();
    sendLocalReply(stream, record, 200, '', r.flags, r.details, ['content-type', 'application/grpc', 'grpc-status', String(abort.grpcStatus), 'grpc-message', r.body]);
    return;
  }
  stream.discardBody();
  sendLocalReply(stream, record, abort.httpStatus, r.body, r.flags, r.details);
}

export class FaultStats {
  readonly delays_injected: Counter;
  readonly aborts_injected: Counter;
  constructor(store: StatsStore, statPrefix: string) {
    const p = 'http.' + sanitizeStatSegment(statPrefix) + '.fault.';
    this.delays_injected = store.counter(p + 'delays_injected');
    this.aborts_injected = store.counter(p + 'aborts_injected');
  }
}

const byStore = new WeakMap<StatsStore, Map<string, FaultStats>>();

/** Resolved on the first fault of a listener's HTTP prefix (no stats for routes without faults). */
export function faultStatsFor(store: StatsStore, statPrefix: string): FaultStats {
  let m = byStore.get(store);
  if (m === undefined) byStore.set(store, (m = new Map()));
  let s = m.get(statPrefix);
  if (s === undefined) m.set(statPrefix, (s = new FaultStats(store, statPrefix)));
  return s;
}
