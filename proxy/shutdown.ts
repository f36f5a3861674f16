// What SIGTERM does, as Istio's pilot-agent does with terminationDrainDuration (default 5 s):
//   1. at once: readiness answers 503 (Kubernetes takes the pod out of its Service endpoints), HTTP/1.1
//      responses carry `Connection: close` (clients reconnect elsewhere), listeners keep accepting
//      (endpoint removal reaches every node's kube-proxy only after a while);
//   2. requests and TCP sessions in flight go on, up to the drain duration;
//   3. at its end, or at a second SIGTERM, what is left is closed (a log line says how much) and the
//      process exits 0.
// With --concurrency N the primary runs this and tells its workers over IPC (`drain`, `close-now`);
// a worker that gets a signal itself (Ctrl-C reaches the whole process group) treats it the same way.

import type { Logger } from 'pino';

/** What a shutdown acts on: the Runtime. */
export interface Drainable {
  readonly log: Logger;
  /** readiness 503, `Connection: close`, workers told; listeners stay open */
  beginDrain(ms: number): void;
  /** open downstream connections in this process; null when they live in workers */
  openConnections(): number | null;
  /** close listeners, admin, workers; flush logs */
  stop(reason: string): Promise<void>;
}

type Phase = 'running' | 'draining' | 'closing';

export class Shutdown {
  private phase: Phase = 'running';
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly target: Drainable,
    private readonly drainMs: number,
    private readonly exit: (code: number) => void,
  ) {}

  get state(): Phase {
    return this.phase;
  }

  /** SIGTERM / SIGINT: the first starts the drain, the next closes everything now. */
  signal(name: string): void {
    if (this.phase === 'running') this.drain(this.drainMs, name);
    else this.now(`second ${name}`);
  }

  /** Start draining for `ms` (a worker gets its primary's duration); later calls change nothing. */
  drain(ms: number, why: string): void {
    if (this.phase !== 'running') return;
    this.phase = 'draining';
    this.target.beginDrain(ms);
    this.target.log.info({ reason: why, drainMs: ms, openConnections: this.target.openConnections() }, `${why}: draining for ${ms} ms (readiness 503, listeners still accepting, HTTP/1.1 responses carry Connection: close)`);
    if (ms <= 0) {
      this.now('drain duration 0');
      return;
    }
    // Not unref'd: the drain is what keeps the process up now.
    this.timer = setTimeout(() => this.now('drain period over'), ms);
  }

  /** Close what is left and exit 0. */
  now(reason: string): void {
    if (this.phase === 'closing') return;
    this.phase = 'closing';
    if (this.timer !== null) clearTimeout(this.timer);
    const open = this.target.openConnections();
    const log = this.target.log;
    if (open === null) log.info({ reason }, `${reason}: closing the workers' remaining connections`);
    else if (open > 0) log.warn({ reason, openConnections: open }, `${reason}: closing ${open} connection(s) still open`);
    else log.info({ reason, openConnections: 0 }, `${reason}: no connection open; exiting`);
    this.target.stop(reason).then(
      () => this.exit(0),
      (err: unknown) => {
        log.error({ err: (err as Error).message }, 'error while stopping; exiting anyway');
        this.exit(0);
      },
    );
  }
}
