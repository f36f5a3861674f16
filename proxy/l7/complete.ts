// The end of one downstream request, whichever way it ended (forwarded, local reply, reset, client
// gone): the HTTP connection manager's request stats and the access-log line. Called exactly once per
// request by its owner (ForwardExchange.finish or the local-reply paths in http-connection.ts).

import { performance } from 'node:perf_hooks';
import type { ProxyContext } from '../context';
import type { AccessLogRecord } from '../observe/access-log-record';
import type { HttpStats } from '../observe/stats';

/** `now`: performance.now() when the caller has just read it (one clock read less per request). */
export function completeRequest(ctx: ProxyContext, stats: HttpStats, r: AccessLogRecord, now = performance.now()): void {
  r.durationMs = Math.round(now - r.startHr);
  stats.downstream_rq_active.dec();
  stats.downstream_rq_completed.inc();
  if (r.responseCode > 0) stats.responseCode(r.responseCode);
  stats.downstream_rq_time.record(r.durationMs);
  ctx.accessLog.log(r);
}
