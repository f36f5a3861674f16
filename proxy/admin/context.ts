// What the admin endpoints need from the running proxy. The runtime implements AdminContext; the
// admin only reads through it (and calls the few mutating hooks), so admin/ never reaches into
// listeners or clusters directly and a fake-but-real context is enough to test every endpoint.

import type { CircuitBreakers, Snapshot } from '../../config/compile/snapshot';
import type { StatsStore } from '../observe/stats';

/** Envoy's server states, as `/ready` and `/server_info` print them. */
export type ServerState = 'PRE_INITIALIZING' | 'INITIALIZING' | 'LIVE' | 'DRAINING';

/** One endpoint of a cluster, as `/clusters` shows it (Envoy `admin.v3.HostStatus`). */
export interface HostStatus {
  address: string;
  port: number;
  hostname: string;
  healthy: boolean;
  weight: number;
  /** `region/zone/sub_zone` (Istio's locality string), '' when unknown */
  locality: string;
  /** locality failover priority (localityLbSetting); absent = 0 */
  priority?: number;
  stats: {
    cx_active: number;
    cx_connect_fail: number;
    cx_total: number;
    rq_active: number;
    rq_error: number;
    rq_success: number;
    rq_timeout: number;
    rq_total: number;
  };
}

export interface ClusterStatus {
  name: string;
  addedViaApi: boolean;
  circuitBreakers: CircuitBreakers;
  hosts: readonly HostStatus[];
}

export interface AdminContext {
  readonly stats: StatsStore;
  snapshot(): Snapshot | null;
  state(): ServerState;
  /** Why the proxy is not ready although LIVE (a configured listener not bound); readiness is 503 then. */
  notReady?(): readonly string[];
  /** `/healthcheck/fail` -> true (state DRAINING), `/healthcheck/ok` -> false (back). */
  setHealthCheckFailed(failed: boolean): void;
  clusters(): readonly ClusterStatus[];
  /** Bound sockets, e.g. `{ name: 'virtualOutbound', address: '0.0.0.0:15001' }`. */
  listeners(): readonly { name: string; address: string }[];
  /** version, command_line_options, node{...} */
  serverInfo(): Record<string, unknown>;
  /** A pino level name (`/logging?level=` is normalised from Envoy's names first). */
  setLogLevel(level: string): void;
  /** `/quitquitquit`: called after the `OK` reply has been sent. */
  quit(): void;
}
