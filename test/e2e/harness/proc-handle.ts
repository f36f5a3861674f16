// A long-running process inside a host namespace (a stand-in server, sluice itself, an interactive nc),
// with its output captured so tests can wait for "READY" or for the log line a request produced.

import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { killGroup } from './run';

export interface ProcExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export type StreamName = 'stdout' | 'stderr';

// Bounds on what we keep: enough for any assertion, never the whole output of a load test.
const MAX_CAPTURE_CHARS = 1024 * 1024;
const MAX_KEPT_LINES = 20_000;
const POLL_INTERVAL_MS = 25;
const KILL_GRACE_MS = 2_000;

// Socket state "LISTEN" in /proc/net/tcp{,6} (include/net/tcp_states.h: TCP_LISTEN = 10).
const TCP_LISTEN_STATE = '0A';

/**
 * Events: 'line' (line: string, stream: StreamName) for each complete output line.
 * The process leads its own process group, so kill()/stop() reach its children too.
 */
export class ProcHandle extends EventEmitter {
  readonly name: string;
  readonly pid: number;
  /** Resolves when the process has exited and its output is drained; never rejects. */
  readonly exited: Promise<ProcExit>;
  private readonly child: ChildProcessWithoutNullStreams;
  private out = '';
  private err = '';
  private readonly partial: Record<StreamName, string> = { stdout: '', stderr: '' };
  // lines[i] is line number (dropped + i); line numbers keep growing when old lines are dropped.
  private readonly lines: string[] = [];
  private dropped = 0;
  private exit: ProcExit | null = null;

  constructor(name: string, cmd: string, args: readonly string[], env: NodeJS.ProcessEnv) {
    super();
    this.name = name;
    this.child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true, env });
    if (this.child.pid === undefined) throw new Error(`e2e: could not start ${name}: ${cmd} ${args.join(' ')}`);
    this.pid = this.child.pid;
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stdout.on('data', (c: string) => this.onData('stdout', c));
    this.child.stderr.on('data', (c: string) => this.onData('stderr', c));
    this.child.stdin.on('error', () => {}); // EPIPE after the process exited is expected, not a test failure
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        this.flushPartial('stdout');
        this.flushPartial('stderr');
        this.exit = { code, signal };
        this.emit('exit', this.exit);
        resolve(this.exit);
      });
      this.child.once('error', (e) => {
        this.onData('stderr', `e2e: spawn error: ${e.message}\n`);
      });
    });
  }

  get stdout(): string {
    return this.out;
  }
  get stderr(): string {
    return this.err;
  }
  get stdin(): NodeJS.WritableStream {
    return this.child.stdin;
  }
  /** Null while running. */
  get exitStatus(): ProcExit | null {
    return this.exit;
  }

  /** Line number the next output line will get: pass it to waitForLine to ignore what came before. */
  mark(): number {
    return this.dropped + this.lines.length;
  }

  /** Kept lines (both streams, in arrival order) that match `re`, from line number `since` on. */
  linesMatching(re: RegExp, since = 0): string[] {
    const from = Math.max(0, since - this.dropped);
    return this.lines.slice(from).filter((l) => re.test(l));
  }

  /**
   * Resolve with the first line (number >= since) matching `re`; reject on timeout or if the process
   * exits first. Lines already printed count, so calling this after the line appeared is not a race.
   */
  waitForLine(re: RegExp, timeoutMs = 5_000, since = 0): Promise<string> {
    const already = this.linesMatching(re, since);
    if (already.length > 0) return Promise.resolve(already[0] as string);
    if (this.exit) return Promise.reject(this.failure(`exited (${this.describeExit()}) before printing ${re}`));
    return new Promise((resolve, reject) => {
      const onLine = (line: string): void => {
        if (!re.test(line)) return;
        done();
        resolve(line);
      };
      const onExit = (): void => {
        done();
        reject(this.failure(`exited (${this.describeExit()}) before printing ${re}`));
      };
      const timer = setTimeout(() => {
        done();
        reject(this.failure(`no line matching ${re} within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.off('line', onLine);
        this.off('exit', onExit);
      };
      this.on('line', onLine);
      this.once('exit', onExit);
    });
  }

  /**
   * Resolve once a socket in this process's network namespace listens on TCP `port`.
   * We read /proc/<pid>/net/tcp{,6} (which shows the sockets of the namespace the pid lives in)
   * rather than connecting: a probe connection would be counted by the proxy under test
   * (downstream_cx_total, access log) and make the tests' exact counter assertions wrong.
   */
  async waitForPort(port: number, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
    for (;;) {
      if (this.exit) throw this.failure(`exited (${this.describeExit()}) before listening on port ${port}`);
      if (await this.listensOn(hexPort)) return;
      if (Date.now() >= deadline) throw this.failure(`nothing listens on port ${port} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, POLL_INTERVAL_MS));
    }
  }

  /** Send `signal` (default SIGTERM) to the process group. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (!this.exit) killGroup(this.pid, signal);
  }

  /** SIGTERM, then SIGKILL if still alive after `graceMs`; resolves when it has exited. */
  async stop(graceMs = KILL_GRACE_MS): Promise<ProcExit> {
    if (this.exit) return this.exit;
    this.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<null>((r) => (timer = setTimeout(() => r(null), graceMs)));
    const first = await Promise.race([this.exited, grace]);
    clearTimeout(timer);
    if (first) return first;
    this.kill('SIGKILL');
    return this.exited;
  }

  /** For the process-exit handler, where only synchronous code runs. */
  killSync(): void {
    if (!this.exit) killGroup(this.pid, 'SIGKILL');
  }

  private async listensOn(hexPort: string): Promise<boolean> {
    for (const file of ['tcp', 'tcp6']) {
      let text: string;
      try {
        text = await readFile(`/proc/${this.pid}/net/${file}`, 'utf8');
      } catch {
        continue; // the process just exited, or no IPv6 in this kernel
      }
      // "  sl  local_address rem_address   st ..." -> local_address is ADDR:PORT in hex, st the state.
      for (const row of text.split('\n').slice(1)) {
        const cols = row.trim().split(/\s+/);
        if (cols[3] === TCP_LISTEN_STATE && cols[1]?.endsWith(`:${hexPort}`)) return true;
      }
    }
    return false;
  }

  private onData(stream: StreamName, chunk: string): void {
    if (stream === 'stdout') this.out = bounded(this.out + chunk);
    else this.err = bounded(this.err + chunk);
    const text = this.partial[stream] + chunk;
    const parts = text.split('\n');
    this.partial[stream] = parts.pop() as string;
    for (const line of parts) this.pushLine(line, stream);
  }

  private flushPartial(stream: StreamName): void {
    if (this.partial[stream] === '') return;
    const line = this.partial[stream];
    this.partial[stream] = '';
    this.pushLine(line, stream);
  }

  private pushLine(line: string, stream: StreamName): void {
    this.lines.push(line);
    if (this.lines.length > MAX_KEPT_LINES) {
      this.lines.shift();
      this.dropped++;
    }
    this.emit('line', line, stream);
  }

  private describeExit(): string {
    return this.exit ? (this.exit.signal ?? `code ${this.exit.code}`) : 'running';
  }

  private failure(what: string): Error {
    const tail = (s: string): string => s.slice(-2000).trim() || '(empty)';
    return new Error(`e2e: ${this.name} (pid ${this.pid}): ${what}\n--- stdout tail ---\n${tail(this.out)}\n--- stderr tail ---\n${tail(this.err)}`);
  }
}

function bounded(s: string): string {
  return s.length > MAX_CAPTURE_CHARS ? s.slice(s.length - MAX_CAPTURE_CHARS) : s;
}
