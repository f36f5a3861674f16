// What the soak's orchestrator (soak.ts) tells its driver (driver.ts), and what the driver reports
// back per transfer: the one contract between the two processes.

export type Behavior = 'normal' | 'slow' | 'client-reset' | 'upstream-reset';
export type ProxyName = 'sidecar' | 'gateway';

export interface Target {
  readonly name: string;
  readonly kind: 'tcp' | 'http';
  /** What the client connects to (captured by the sidecar). */
  readonly host: string;
  readonly port: number;
  /** HTTP Host header, when not `host`. */
  readonly hostHeader?: string;
  /** The upstream drops SYNs: every transfer must fail, with a connect-failure flag. */
  readonly hole: boolean;
  /** The proxies the transfer crosses, in order. */
  readonly proxies: readonly ProxyName[];
  readonly weight: number;
}

export interface Plan {
  readonly seed: number;
  readonly durationMs: number;
  readonly concurrency: number;
  /** A transfer still running after this many ms is ended and reported as `hang` (default 180 s). */
  readonly hangMs?: number;
  readonly targets: readonly Target[];
}

export interface TransferResult {
  id: string;
  target: string;
  behavior: Behavior;
  up: number;
  down: number;
  /** Wall clock (ms) at start and end, to tell which transfers a worker kill could have hit. */
  t0: number;
  t1: number;
  /** The client's local port: the sidecar's access-log line names it (DOWNSTREAM_REMOTE_ADDRESS). */
  localPort: number;
  /** TCP: the address the sink saw, i.e. the last proxy's UPSTREAM_LOCAL_ADDRESS. */
  peer: string | null;
  status: number;
  /** The sink's hash of what it received equals the hash of what was sent. */
  upOk: boolean;
  downLen: number;
  /** The bytes that did arrive (all, or a prefix when the transfer failed) equal the expected stream. */
  prefixOk: boolean;
  /** Every byte of the answer arrived and equals the expected stream. */
  downOk: boolean;
  /** The transfer ended cleanly with everything intact. */
  complete: boolean;
  error: string | null;
}
