// Access log: formatters for a completed AccessLogRecord and the asynchronous sink that writes
// them. Three formats:
//   istio  Istio >= 1.9 default text line (the default; a superset of Envoy's classic line)
//   envoy  Envoy's classic default line, the shape shown in the seed documents
//   json   Istio's JSON encoding (accessLogEncoding: JSON), Istio's key names and order
//
// The sink must never block or grow without bound on the hot path: lines go to a SonicBoom
// (`pino.destination({ sync: false })`) which batches them into asynchronous fs.write calls. If
// the destination is slower than the traffic, SonicBoom's `maxLength` makes it drop the line
// (counted in `access_log.dropped`) instead of buffering it: losing log lines under overload is
// what Envoy does too, running out of memory is not an option.

import { mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { directionOf, type AccessLogRecord, type AccessLogSink } from './access-log-record';
import type { Counter, StatsStore } from './stats';
import { withAudit, type AuditLogOptions } from './audit-log';

export type AccessLogFormat = 'istio' | 'envoy' | 'json';
export const ACCESS_LOG_FORMATS: readonly AccessLogFormat[] = ['istio', 'envoy', 'json'];

// ------------------------------------------------------------------ shared fields

/** Envoy prints an unset value as `-`. */
function dash(v: string | null): string {
  return v === null || v === '' ? '-' : v;
}

// START_TIME: UTC ISO-8601 with milliseconds. Records completing together usually share their
// start millisecond under load, so the last conversion is cached (one Date per distinct ms).
let lastStartMs = NaN;
let lastStartText = '';
export function startTimeText(ms: number): string {
  if (ms !== lastStartMs) {
    lastStartMs = ms;
    lastStartText = new Date(ms).toISOString();
  }
  return lastStartText;
}

/** `"GET /politics HTTP/1.1"`; TCP connections have none of the three: `"- - -"`. */
function requestLine(r: AccessLogRecord): string {
  return '"' + dash(r.method) + ' ' + dash(r.path) + ' ' + dash(r.protocol) + '"';
}

/** DURATION and the upstream service time are whole milliseconds in Envoy's logs. */
function ms(v: number): number {
  return Math.trunc(v);
}

function serviceTime(r: AccessLogRecord): string {
  return r.upstreamServiceTimeMs === null ? '-' : String(ms(r.upstreamServiceTimeMs));
}

// ------------------------------------------------------------------ formatters

/**
 * Envoy's default format (`usage.rst`):
 * `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
 * %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%
 * "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"`
 */
export function formatEnvoy(r: AccessLogRecord): string {
  return (
    '[' + startTimeText(r.startTime) + '] ' + requestLine(r) + ' ' + r.responseCode + ' ' + dash(r.responseFlags) + ' ' +
    r.bytesReceived + ' ' + r.bytesSent + ' ' + ms(r.durationMs) + ' ' + serviceTime(r) +
    ' "' + dash(r.xForwardedFor) + '" "' + dash(r.userAgent) + '" "' + dash(r.requestId) + '" "' + dash(r.authority) +
    '" "' + dash(r.upstreamHost) + '"\n'
  );
}

/**
 * Istio's default text format since 1.9 (`EnvoyTextLogFormat`): Envoy's line plus
 * RESPONSE_CODE_DETAILS, CONNECTION_TERMINATION_DETAILS and "UPSTREAM_TRANSPORT_FAILURE_REASON"
 * after the flags, and the cluster, addresses, SNI and route name at the end.
 */
export function formatIstio(r: AccessLogRecord): string {
  return (
    '[' + startTimeText(r.startTime) + '] ' + requestLine(r) + ' ' + r.responseCode + ' ' + dash(r.responseFlags) + ' ' +
    dash(r.responseCodeDetails) + ' ' + dash(r.connectionTerminationDetails) + ' "' + dash(r.upstreamTransportFailureReason) + '" ' +
    r.bytesReceived + ' ' + r.bytesSent + ' ' + ms(r.durationMs) + ' ' + serviceTime(r) +
    ' "' + dash(r.xForwardedFor) + '" "' + dash(r.userAgent) + '" "' + dash(r.requestId) + '" "' + dash(r.authority) +
    '" "' + dash(r.upstreamHost) + '" ' + dash(r.upstreamCluster) + ' ' + dash(r.upstreamLocalAddress) + ' ' +
    dash(r.downstreamLocalAddress) + ' ' + dash(r.downstreamRemoteAddress) + ' ' + dash(r.requestedServerName) + ' ' +
    dash(r.routeName) + '\n'
  );
}

/** JSON string or `null`, as Envoy's JSON formatter renders an unset operator. */
function js(v: string | null): string {
  return v === null || v === '' ? 'null' : JSON.stringify(v);
}

/**
 * Istio's JSON encoding (`EnvoyJSONLogFormatIstio`), keys in Istio's order. Numbers stay numbers
 * (Envoy keeps operator types); header-derived values are strings (`upstream_service_time: "4"`);
 * `response_flags` is `"-"` when empty, as Envoy prints it.
 */
export function formatJson(r: AccessLogRecord): string {
  return (
    '{"start_time":"' + startTimeText(r.startTime) + '","route_name":' + js(r.routeName) + ',"method":' + js(r.method) +
    ',"path":' + js(r.path) + ',"protocol":' + js(r.protocol) + ',"response_code":' + r.responseCode +
    ',"response_flags":' + JSON.stringify(dash(r.responseFlags)) + ',"response_code_details":' + js(r.responseCodeDetails) +
    ',"connection_termination_details":' + js(r.connectionTerminationDetails) + ',"bytes_received":' + r.bytesReceived +
    ',"bytes_sent":' + r.bytesSent + ',"duration":' + ms(r.durationMs) +
    ',"upstream_service_time":' + (r.upstreamServiceTimeMs === null ? 'null' : '"' + ms(r.upstreamServiceTimeMs) + '"') +
    ',"x_forwarded_for":' + js(r.xForwardedFor) + ',"user_agent":' + js(r.userAgent) + ',"request_id":' + js(r.requestId) +
    ',"authority":' + js(r.authority) + ',"upstream_host":' + js(r.upstreamHost) + ',"upstream_cluster":' + js(r.upstreamCluster) +
    ',"upstream_local_address":' + js(r.upstreamLocalAddress) + ',"downstream_local_address":' + js(r.downstreamLocalAddress) +
    ',"downstream_remote_address":' + js(r.downstreamRemoteAddress) + ',"requested_server_name":' + js(r.requestedServerName) +
    ',"upstream_transport_failure_reason":' + js(r.upstreamTransportFailureReason) +
    // Not in Istio's default JSON keys: which side of the sidecar, and the verified client identity.
    ',"downstream_peer_uri_san":' + js(r.downstreamPeerUriSan) + ',"direction":"' + directionOf(r) + '"}\n'
  );
}

export const FORMATTERS: Readonly<Record<AccessLogFormat, (r: AccessLogRecord) => string>> = {
  istio: formatIstio,
  envoy: formatEnvoy,
  json: formatJson,
};

// ------------------------------------------------------------------ sink

export interface AccessLogOptions {
  /** `stdout`, `off`, or a file path (appended to, created with its directory if missing; opened now). */
  readonly target: 'stdout' | 'off' | string;
  readonly format: AccessLogFormat;
  /**
   * Bytes buffered (written by nobody yet) above which new lines are dropped. Default 8 MiB:
   * ~40k Istio lines, i.e. seconds of a fast proxy's traffic if the disk stalls.
   */
  readonly maxBufferBytes?: number;
  /** Bytes gathered before a write is issued; 0 (default) writes as soon as the previous write ends. */
  readonly minLength?: number;
  /** `--audit-log PATH`: also write every record to the egress audit log (audit-log.ts). */
  readonly audit?: AuditLogOptions | null;
}

export type AccessLog = AccessLogSink & {
  /** Resolves when every accepted line has been handed to the OS. */
  flush(): Promise<void>;
  /** Flush, then close the file (never closes stdout). Further log() calls are ignored. */
  close(): Promise<void>;
};

export const DEFAULT_ACCESS_LOG_BUFFER_BYTES = 8 * 1024 * 1024;
const WRITE_CHUNK_BYTES = 1024 * 1024;

/** Stat names, declared once. */
export const ACCESS_LOG_STATS = {
  written: 'access_log.written',
  dropped: 'access_log.dropped',
  writeError: 'access_log.write_error',
} as const;

// SonicBoom keeps "bytes not yet written" and "write in flight" private, and its flush(cb) does
// not wait for them (utf8 mode with minLength 0 calls back at once; buffer mode never calls
// back). We read them to make flush() honest; test/unit/proxy/observe/access-log.test.ts fails if
// sonic-boom renames them.
interface SonicInternals {
  _len: number;
  _writing: boolean;
  destroyed: boolean;
}

/**
 * Open the file now, synchronously, so a bad `--access-log PATH` (no permission, a directory)
 * fails at startup with the path in the message rather than as EBADF on the first request.
 */
function openTarget(target: string): number {
  if (target === 'stdout') return 1;
  try {
    mkdirSync(path.dirname(target), { recursive: true });
    return openSync(target, 'a');
  } catch (err) {
    throw Object.assign(new Error(`cannot open access log "${target}": ${(err as Error).message}`, { cause: err }), { code: 'PRX_ERR_ACCESS_LOG_OPEN' });
  }
}

class AsyncAccessLog {
  private readonly format: (r: AccessLogRecord) => string;
  private readonly dest: ReturnType<typeof pino.destination>;
  private readonly sonic: SonicInternals;
  private readonly written: Counter;
  private readonly dropped: Counter;
  private readonly writeError: Counter;
  /** set by the 'drop' listener during write(): was the current line dropped? */
  private droppedLine = false;
  private closed = false;
  private closing: Promise<void> | null = null;

  constructor(target: string, format: AccessLogFormat, stats: StatsStore, maxBufferBytes: number, minLength: number) {
    this.format = FORMATTERS[format];
    this.written = stats.counter(ACCESS_LOG_STATS.written);
    this.dropped = stats.counter(ACCESS_LOG_STATS.dropped);
    this.writeError = stats.counter(ACCESS_LOG_STATS.writeError);
    this.dest = pino.destination({
      dest: openTarget(target),
      sync: false,
      minLength,
      maxLength: maxBufferBytes,
      // Buffer mode: SonicBoom's string mode re-measures the whole pending chunk
      // (Buffer.byteLength) on every write, O(chunk) per line; buffer mode appends to a list.
      contentMode: 'buffer',
      // The default caps one fs.write at 16 KiB (~65 lines) per event-loop turn, which a busy
      // proxy outruns. Measured, 200k lines produced 1000 per turn: 16 KiB string mode dropped
      // 77%; 1 MiB string mode dropped none but took 16.6 s (the re-measuring above); 1 MiB
      // buffer mode drops none in 0.19 s.
      maxWrite: WRITE_CHUNK_BYTES,
    });
    this.sonic = this.dest as unknown as SonicInternals;
    this.dest.on('drop', this.onDrop.bind(this));
    // Without a listener an fs error (disk full, EBADF) would be thrown from the event loop and
    // take the proxy down; the access log is not worth that. SonicBoom keeps the buffer (bounded
    // by maxLength) and retries with the next write.
    this.dest.on('error', this.onError.bind(this));
  }

  log(record: AccessLogRecord): void {
    if (this.closed) return;
    this.droppedLine = false;
    // Buffer.from of a short ASCII line comes from Node's shared 8 KiB pool: no syscall, no
    // per-line ArrayBuffer.
    this.dest.write(Buffer.from(this.format(record)) as unknown as string);
    if (this.droppedLine) this.dropped.inc();
    else this.written.inc();
  }

  async flush(): Promise<void> {
    while (!this.sonic.destroyed && (this.sonic._len > 0 || this.sonic._writing)) {
      // Below minLength nothing is being written: start a write of what is buffered.
      if (!this.sonic._writing) this.dest.flush();
      if (!(await this.nextWrite())) return;
    }
  }

  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closed = true;
    this.closing = new Promise<void>((resolve) => {
      if (this.sonic.destroyed) return resolve();
      this.dest.once('close', () => resolve());
      this.dest.end();
    });
    return this.closing;
  }

  /** Resolves true after the next completed fs.write, false on error or close. */
  private nextWrite(): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const finish = (ok: boolean): void => {
        this.dest.off('write', onWrite);
        this.dest.off('error', onFail);
        this.dest.off('close', onFail);
        resolve(ok);
      };
      const onWrite = (): void => finish(true);
      const onFail = (): void => finish(false);
      this.dest.on('write', onWrite);
      this.dest.on('error', onFail);
      this.dest.on('close', onFail);
    });
  }

  private onDrop(): void {
    this.droppedLine = true;
  }

  private onError(): void {
    this.writeError.inc();
  }
}

const OFF: AccessLog = {
  enabled: false,
  log() {},
  flush: () => Promise.resolve(),
  close: () => Promise.resolve(),
};

/** The access log sink for `--access-log stdout|off|PATH` and `--access-log-format`. */
export function createAccessLog(
  opts: AccessLogOptions,
  stats: StatsStore,
): AccessLog {
  if (!ACCESS_LOG_FORMATS.includes(opts.format)) throw new TypeError(`unknown access log format "${String(opts.format)}", use one of ${ACCESS_LOG_FORMATS.join(', ')}`);
  const main: AccessLog = opts.target === 'off' ? OFF : asAccessLog(new AsyncAccessLog(opts.target, opts.format, stats, opts.maxBufferBytes ?? DEFAULT_ACCESS_LOG_BUFFER_BYTES, opts.minLength ?? 0));
  return withAudit(main, opts.audit, stats);
}

function asAccessLog(sink: AsyncAccessLog): AccessLog {
  return {
    enabled: true,
    log: sink.log.bind(sink),
    flush: sink.flush.bind(sink),
    close: sink.close.bind(sink),
  };
}
