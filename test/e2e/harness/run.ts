// Run a command to completion and capture its output: the one primitive under Topology.exec, the
// namespace plumbing and the certificate helpers.
//
// Every run is bounded in time (default 10 s): an e2e step that hangs must fail the test, not the CI job.

import { spawn } from 'node:child_process';

export interface RunOptions {
  timeoutMs?: number;
  input?: string;
  env?: Record<string, string>;
}

export interface RunResult {
  /** Exit code, or null when the process died by a signal (also after our timeout kill). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const DEFAULT_TIMEOUT_MS = 10_000;
// A runaway command must not eat the test's memory; e2e assertions look at far less than this.
const MAX_CAPTURE_CHARS = 4 * 1024 * 1024;

function appendBounded(buf: string, chunk: string): string {
  const next = buf + chunk;
  return next.length > MAX_CAPTURE_CHARS ? next.slice(next.length - MAX_CAPTURE_CHARS) : next;
}

/** Run `cmd args` and resolve when it exits (never rejects for a non-zero exit; rejects only if it cannot start). */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    // detached: the command leads its own process group, so the timeout kill also reaches anything
    // it started (a shell's children, `ip netns exec`'s payload).
    const child = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (c: string) => (stdout = appendBounded(stdout, c)));
    child.stderr.on('data', (c: string) => (stderr = appendBounded(stderr, c)));
    // A child that exits without reading its stdin makes our write fail with EPIPE; that is not our error.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** Like run(), but throws (with the command and its stderr) unless it exits 0. */
export async function mustRun(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    const why = r.timedOut ? `timed out after ${opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms` : `exit ${r.code ?? r.signal}`;
    throw new Error(`e2e: \`${cmd} ${args.join(' ')}\` failed (${why}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r;
}

/** Signal a whole process group (the child was spawned detached); quiet when it is already gone. */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already exited
    }
  }
}
