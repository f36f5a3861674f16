// Egress audit log (`--audit-log PATH`): one JSON line per HTTP request and per TCP/TLS connection
// that passed the proxy, with who (mTLS peer identity when the gateway verified one, else the
// downstream address), where to (host or SNI, port, cluster, upstream), how much and how it ended
// (code + Envoy flags). The seeds' first reason for egress gateways is that "all traffic leaving the
// mesh passes dedicated nodes that are specially monitored and audited": this is that record, in
// its own file, apart from the operational access log.
//
// It is one more AccessLogSink, fed by a tee beside the access log, so the data plane is unchanged.
// Writing is asynchronous and bounded like the access log (a slow disk drops lines, counted in
// `audit_log.dropped`, rather than growing memory). Rotation is by size: before a write would take
// the file past `maxBytes`, `PATH` becomes `PATH.1` (`.1` -> `.2`, ..., the oldest beyond `keep`
// is deleted) and a fresh `PATH` is opened. Because rotation happens between writes, at line
// boundaries, every file holds whole lines and at most `maxBytes` (a single longer line excepted).

import fs from 'node:fs';
import path from 'node:path';
import { directionOf, type AccessLogRecord, type AccessLogSink } from './access-log-record';
import type { Counter, StatsStore } from './stats';
import { requestedHost } from './egress-decision';

export interface AuditLogOptions {
  readonly path: string;
  /** Rotate before the file would exceed this many bytes. Default 100 MiB. */
  readonly maxBytes?: number;
  /** Rotated files kept (`PATH.1` .. `PATH.<keep>`). Default 5; 0 = start over in place. */
  readonly keep?: number;
  /** Lines waiting for the disk above this many bytes are dropped. Default 8 MiB. */
  readonly maxBufferBytes?: number;
}

export const DEFAULT_AUDIT_MAX_BYTES = 100 * 1024 * 1024;
export const DEFAULT_AUDIT_KEEP = 5;
const DEFAULT_BUFFER_BYTES = 8 * 1024 * 1024;
/** Lines gathered into one fs.write, as the access log's SonicBoom does. */
const WRITE_CHUNK_BYTES = 1024 * 1024;

/** Stat names, declared once. */
export const AUDIT_LOG_STATS = {
  written: 'audit_log.written',
  dropped: 'audit_log.dropped',
  rotated: 'audit_log.rotated',
  writeError: 'audit_log.write_error',
} as const;

function portOf(address: string | null): number | null {
  if (address === null) return null;
  const colon = address.lastIndexOf(':');
  const n = Number(address.slice(colon + 1));
  return colon < 0 || !Number.isInteger(n) ? null : n;
}

// Records completing together share their start millisecond under load: one Date per distinct ms.
let lastMs = NaN;
let lastText = '';
function timeText(ms: number): string {
  if (ms !== lastMs) {
    lastMs = ms;
    lastText = new Date(ms).toISOString();
  }
  return lastText;
}

function js(v: string | null): string {
  return v === null || v === '' ? 'null' : JSON.stringify(v);
}

/**
 * One audit line. `destination` is what the client asked for: the Host of an HTTP request, else the
 * SNI of a TLS connection, else the address it connected to. `source` is the verified identity
 * (DOWNSTREAM_PEER_URI_SAN) when there is one, else the downstream address. `decision` is `allow`,
 * `deny` or `would_deny` (report mode) with its `reason` (observe/egress-decision.ts).
 */
export function formatAudit(r: AccessLogRecord): string {
  const destination = requestedHost(r);
  const port = portOf(r.downstreamLocalAddress);
  return (
    '{"time":"' + timeText(r.startTime) + '","decision":"' + (r.policyDecision ?? 'allow') + '","reason":' + js(r.policyReason) + ',"source":' + js(r.downstreamPeerUriSan ?? r.downstreamRemoteAddress) +
    ',"source_address":' + js(r.downstreamRemoteAddress) + ',"destination":' + js(destination) + ',"sni":' + js(r.requestedServerName) +
    ',"port":' + (port === null ? 'null' : port) + ',"protocol":' + js(r.protocol ?? 'tcp') + ',"method":' + js(r.method) +
    ',"path":' + js(r.path) + ',"cluster":' + js(r.upstreamCluster) + ',"upstream_host":' + js(r.upstreamHost) +
    ',"bytes_received":' + r.bytesReceived + ',"bytes_sent":' + r.bytesSent + ',"duration_ms":' + Math.trunc(r.durationMs) +
    ',"response_code":' + r.responseCode + ',"response_flags":' + JSON.stringify(r.responseFlags === '' ? '-' : r.responseFlags) +
    ',"response_code_details":' + js(r.responseCodeDetails) + ',"route":' + js(auditRoute(r)) + ',"direction":"' + directionOf(r) + '"}\n'
  );
}

/** The matched route's name, else (an unnamed VirtualService rule) the rule it came from; null = no route matched. */
function auditRoute(r: AccessLogRecord): string | null {
  if (r.routeName !== null && r.routeName !== '') return r.routeName;
  const s = r.routeSource;
  if (s === null || s.kind !== 'VirtualService') return null;
  return `${s.namespace}/${s.name}.http.${s.ruleIndex}` + (s.matchIndex >= 0 ? `.match.${s.matchIndex}` : '');
}

function openAppend(file: string): { fd: number; size: number } {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const fd = fs.openSync(file, 'a');
    return { fd, size: fs.fstatSync(fd).size };
  } catch (err) {
    throw Object.assign(new Error(`cannot open audit log "${file}": ${(err as Error).message}`, { cause: err }), { code: 'PRX_ERR_AUDIT_LOG_OPEN' });
  }
}

export class AuditLog implements AccessLogSink {
  readonly enabled = true;
  readonly path: string;
  private readonly maxBytes: number;
  private readonly keep: number;
  private readonly maxBufferBytes: number;
  private fd: number;
  /** bytes in the current file, including the write in flight */
  private size: number;
  private readonly pending: Buffer[] = [];
  private pendingBytes = 0;
  private inflight: Buffer | null = null;
  private inflightOffset = 0;
  private closed = false;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly written: Counter;
  private readonly dropped: Counter;
  private readonly rotated: Counter;
  private readonly writeError: Counter;
  private readonly onWrite: (err: NodeJS.ErrnoException | null, n: number) => void;

  constructor(opts: AuditLogOptions, stats: StatsStore) {
    this.path = opts.path;
    this.maxBytes = opts.maxBytes ?? DEFAULT_AUDIT_MAX_BYTES;
    this.keep = opts.keep ?? DEFAULT_AUDIT_KEEP;
    this.maxBufferBytes = opts.maxBufferBytes ?? DEFAULT_BUFFER_BYTES;
    if (!(this.maxBytes > 0)) throw new TypeError(`audit log maxBytes must be > 0, got ${this.maxBytes}`);
    if (!Number.isInteger(this.keep) || this.keep < 0) throw new TypeError(`audit log keep must be an integer >= 0, got ${this.keep}`);
    // Open now so a bad path fails at startup, with the path in the message.
    ({ fd: this.fd, size: this.size } = openAppend(this.path));
    this.written = stats.counter(AUDIT_LOG_STATS.written);
    this.dropped = stats.counter(AUDIT_LOG_STATS.dropped);
    this.rotated = stats.counter(AUDIT_LOG_STATS.rotated);
    this.writeError = stats.counter(AUDIT_LOG_STATS.writeError);
    this.onWrite = this.written_.bind(this);
  }

  log(record: AccessLogRecord): void {
    if (this.closed) return;
    const line = Buffer.from(formatAudit(record));
    if (this.pendingBytes + line.length > this.maxBufferBytes) {
      this.dropped.inc();
      return;
    }
    this.pending.push(line);
    this.pendingBytes += line.length;
    this.written.inc();
    if (this.inflight === null) this.writeNext();
  }

  /** Resolves when every accepted line is in the file (or failed to get there). */
  flush(): Promise<void> {
    if (this.inflight === null && this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    await new Promise<void>((resolve) => fs.close(this.fd, () => resolve()));
  }

  /** Take whole lines that fit the current file (rotating first if even one does not) and write them. */
  private writeNext(): void {
    if (this.pending.length === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
      return;
    }
    if (this.size > 0 && this.size + this.pending[0]!.length > this.maxBytes) this.rotate();
    let n = 0;
    let bytes = 0;
    while (n < this.pending.length) {
      const len = this.pending[n]!.length;
      if (n > 0 && (this.size + bytes + len > this.maxBytes || bytes + len > WRITE_CHUNK_BYTES)) break;
      bytes += len;
      n++;
    }
    const lines = this.pending.splice(0, n);
    this.pendingBytes -= bytes;
    this.inflight = n === 1 ? lines[0]! : Buffer.concat(lines, bytes);
    this.inflightOffset = 0;
    this.size += bytes;
    fs.write(this.fd, this.inflight, 0, bytes, null, this.onWrite);
  }

  private written_(err: NodeJS.ErrnoException | null, n: number): void {
    const chunk = this.inflight!;
    if (err !== null) {
      // Disk full, file removed under us: count it, lose this chunk, keep serving traffic.
      this.writeError.inc();
    } else if (this.inflightOffset + n < chunk.length) {
      this.inflightOffset += n;
      fs.write(this.fd, chunk, this.inflightOffset, chunk.length - this.inflightOffset, null, this.onWrite);
      return;
    }
    this.inflight = null;
    this.writeNext();
  }

  /**
   * PATH -> PATH.1 -> ... -> PATH.<keep>. Synchronous on purpose: it runs once per `maxBytes`
   * written, between two writes, and a few renames cost microseconds; doing it asynchronously
   * would need a second queue state for lines arriving meanwhile.
   */
  private rotate(): void {
    try {
      fs.closeSync(this.fd);
      if (this.keep === 0) fs.rmSync(this.path, { force: true });
      else {
        fs.rmSync(`${this.path}.${this.keep}`, { force: true });
        for (let i = this.keep - 1; i >= 1; i--) {
          if (fs.existsSync(`${this.path}.${i}`)) fs.renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
        }
        fs.renameSync(this.path, `${this.path}.1`);
      }
    } catch {
      this.writeError.inc();
    }
    try {
      ({ fd: this.fd, size: this.size } = openAppend(this.path));
    } catch {
      // Could not reopen (directory removed?): keep failing writes counted rather than crash.
      this.writeError.inc();
      this.fd = -1;
      this.size = 0;
    }
    this.rotated.inc();
  }
}

/**
 * With `--concurrency N > 1` every worker process carries traffic: each writes (and rotates) its own
 * `PATH.worker-<i>`, since two processes rotating one file would rename it under each other.
 */
export function auditPathForProcess(file: string, env: NodeJS.ProcessEnv = process.env): string {
  const worker = env['SLUICE_WORKER_INDEX'];
  return worker === undefined || worker === '' ? file : `${file}.worker-${worker}`;
}

/** A sink the runtime can flush and close (the access log, or a worker's IPC access log). */
export interface ClosableSink extends AccessLogSink {
  flush(): Promise<void>;
  close(): Promise<void>;
}

/**
 * `sink` plus the audit log when `--audit-log` is set: a tee, so the data plane keeps calling one
 * `log(record)` and needs no change; flush and close cover both.
 */
export function withAudit<S extends ClosableSink>(sink: S, audit: AuditLogOptions | null | undefined, stats: StatsStore): S | ClosableSink {
  if (audit === undefined || audit === null) return sink;
  const log = new AuditLog({ ...audit, path: auditPathForProcess(audit.path) }, stats);
  return {
    enabled: true,
    log(record: AccessLogRecord): void {
      sink.log(record);
      log.log(record);
    },
    flush: () => Promise.all([sink.flush(), log.flush()]).then(() => undefined),
    close: () => Promise.all([sink.close(), log.close()]).then(() => undefined),
  };
}
