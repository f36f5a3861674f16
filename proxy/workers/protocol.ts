// Messages between the multi-worker primary and its workers (Node cluster IPC). The primary owns
// the admin endpoints and stdout; workers own the data plane. Kept small and explicit.

import type { ClusterStatus } from '../admin/context';
import type { StatsReport } from './stats-exchange';

export type ToWorker =
  | { readonly t: 'gather'; readonly id: number }
  | { readonly t: 'reset-counters' }
  | { readonly t: 'log-level'; readonly level: string }
  | { readonly t: 'health'; readonly failed: boolean };

export type ToPrimary =
  | { readonly t: 'live' }
  | { readonly t: 'gathered'; readonly id: number; readonly stats: StatsReport; readonly clusters: readonly ClusterStatus[]; readonly listeners: readonly { name: string; address: string }[] }
  /** Complete access-log lines, batched; the primary writes them to its stdout. */
  | { readonly t: 'access-log'; readonly data: string };

export function isToWorker(m: unknown): m is ToWorker {
  return typeof m === 'object' && m !== null && typeof (m as { t?: unknown }).t === 'string';
}

export function isToPrimary(m: unknown): m is ToPrimary {
  return typeof m === 'object' && m !== null && typeof (m as { t?: unknown }).t === 'string';
}
