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

// tap runs test files with NODE_OPTIONS=--import=<tap's processinfo hook> and TAP_* / _TAPJS_* variables.
// Passed on, every `node` we start inside a namespace (sluice itself, the stand-ins) would load tap's
// hooks and try to write .tap/processinfo as uid 1337: the system under test must run as it does in
// production, so those are dropped unless a caller sets them explicitly in `extra`.
const TEST_RUNNER_ENV = /^(NODE_OPTIONS|TAP|TAP_.*|_TAPJS_.*|TS_NODE_.*)$/;

/**
 * `env` argv that strips the test runner's variables right before the payload runs. Needed on top of
 * childEnv(): tap's processinfo hook patches child_process at a lower level and re-adds NODE_OPTIONS to
 * every spawn's environment, whatever env we pass. Values the caller set explicitly are put back.
 */
export function stripRunnerEnvArgv(extra?: Record<string, string>): string[] {
  const names = new Set(['NODE_OPTIONS', '_TAPJS_PROCESSINFO_EXCLUDE_', '_TAPJS_PROCESSINFO_EXTERNAL_ID_']);
  for (const k of Object.keys(process.env)) if (TEST_RUNNER_ENV.test(k)) names.add(k);
  const argv = ['env'];
  for (const n of names) if (!(extra && n in extra)) argv.push('-u', n);
  for (const [k, v] of Object.entries(extra ?? {})) if (TEST_RUNNER_ENV.test(k)) argv.push(`${k}=${v}`);
  return argv;
}

/** The environment for a process we start: ours minus the test runner's hooks, plus `extra`. */
export function childEnv(extra?: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!TEST_RUNNER_ENV.test(k)) env[k] = v;
  return extra ? Object.assign(env, extra) : env;
}
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
      env: childEnv(opts.env),
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
