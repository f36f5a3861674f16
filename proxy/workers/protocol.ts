// Messages between the multi-worker primary and its workers (Node cluster IPC). The primary owns
// the admin endpoints and stdout; workers own the data plane. Kept small and explicit.

import type { ClusterStatus } from '../admin/context';
import type { StatsReport } from './stats-exchange';

export type ToWorker =
  | { readonly t: 'gather'; readonly id: number }
  | { readonly t: 'reset-counters' }
  | { readonly t: 'log-level'; readonly level: string }
  | { readonly t: 'health'; readonly failed: boolean }
  /** SIGTERM reached the primary: drain for this long (proxy/shutdown.ts), then exit 0 */
  | { readonly t: 'drain'; readonly ms: number }
  /** the drain is over (or a second SIGTERM came): close what is left and exit now */
  | { readonly t: 'close-now'; readonly reason: string };

export type ToPrimary =
  | { readonly t: 'live' }
  /** configured listeners this worker could not bind, with why (sent before 'live' and after each reload) */
  | { readonly t: 'unbound'; readonly problems: readonly string[] }
  | { readonly t: 'gathered'; readonly id: number; readonly stats: StatsReport; readonly clusters: readonly ClusterStatus[]; readonly listeners: readonly { name: string; address: string }[] }
  /** Complete access-log lines, batched; the primary writes them to its stdout. */
  | { readonly t: 'access-log'; readonly data: string };

export function isToWorker(m: unknown): m is ToWorker {
  return typeof m === 'object' && m !== null && typeof (m as { t?: unknown }).t === 'string';
}

export function isToPrimary(m: unknown): m is ToPrimary {
  return typeof m === 'object' && m !== null && typeof (m as { t?: unknown }).t === 'string';
}
