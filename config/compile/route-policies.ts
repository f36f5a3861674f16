// The per-route HTTP policies of a VirtualService rule, compiled as Istio translates them to Envoy
// (pilot/pkg/networking/core/route/route.go, route/retry/retry.go): retries, fault injection,
// mirrors, CORS and rewrite. Each becomes a frozen object the data plane reads per request
// (proxy/l7/retry-policy.ts, fault.ts, mirror.ts, cors.ts); nothing here runs per request.

import type { CorsPolicy as CorsSpec, HTTPFaultInjection, HTTPMatchRequest, HTTPRetry, HTTPRewrite, Percent } from '../resources/types';
import type { CorsPolicy, FaultPolicy, PathRewrite, RetryOn, RetryPolicy, RouteRewrite, StringMatcher } from './snapshot';
import { compileStringMatch } from './string-match';

/** Envoy's default base interval for retry back-off (`retry_back_off.base_interval`). */
export const DEFAULT_BACKOFF_BASE_MS = 25;

/** Istio's retryOn when `retries` is absent or gives none (Istio route/retry/retry.go; 503 is no longer retried by default since Istio 1.24). */
export const DEFAULT_RETRY_ON = 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes';

const GRPC_RETRY_ON: Readonly<Record<string, number>> = {
  cancelled: 1, 'deadline-exceeded': 4, 'resource-exhausted': 8, internal: 13, unavailable: 14,
};

function retryOnOf(names: readonly string[]): RetryOn {
  const has = (n: string): boolean => names.includes(n);
  return {
    fiveXx: has('5xx'),
    gatewayError: has('gateway-error'),
    reset: has('reset'),
    resetBeforeRequest: has('reset-before-request'),
    connectFailure: has('connect-failure'),
    retriable4xx: has('retriable-4xx'),
    refusedStream: has('refused-stream'),
    retriableStatusCodes: has('retriable-status-codes'),
    envoyRateLimited: has('envoy-ratelimited'),
    grpcStatuses: names.filter((n) => GRPC_RETRY_ON[n] !== undefined).map((n) => GRPC_RETRY_ON[n]!),
  };
}

/**
 * Istio `retry.ConvertPolicy`: no `retries` = the default policy (2 attempts); `attempts: 0`
 * disables retries; bare status codes in `retryOn` become retriable status codes and
 * `retriable-status-codes` is appended when missing.
 */
export function retryPolicy(retries: HTTPRetry | undefined): RetryPolicy | null {
  const attempts = retries === undefined ? 2 : retries.attempts ?? 0;
  if (attempts <= 0) return null;
  const written = (retries?.retryOn ?? DEFAULT_RETRY_ON).split(',').map((s) => s.trim()).filter((s) => s !== '');
  const statusCodes: number[] = [];
  const names: string[] = [];
  for (const w of written) {
    if (/^\d+$/.test(w)) statusCodes.push(Number(w));
    else names.push(w);
  }
  if (statusCodes.length > 0 && !names.includes('retriable-status-codes')) names.push('retriable-status-codes');
  return {
    attempts,
    perTryTimeoutMs: retries?.perTryTimeoutMs ?? 0,
    retryOn: written,
    on: retryOnOf(names),
    statusCodes,
    backoffBaseMs: retries?.backoffMs !== undefined && retries.backoffMs > 0 ? retries.backoffMs : DEFAULT_BACKOFF_BASE_MS,
    retryRemoteLocalities: retries?.retryRemoteLocalities ?? false,
    ignorePreviousHosts: retries?.retryIgnorePreviousHosts ?? true,
  };
}

/** The policy of a route with no `retries`: Istio's default (2 attempts on connect failure and friends). */
export const DEFAULT_RETRY_POLICY: RetryPolicy = retryPolicy(undefined)!;

/** gRPC status names as Istio's `grpcStatus` takes them (also a number as text). */
const GRPC_STATUS: Readonly<Record<string, number>> = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
};

export function grpcStatusCode(name: string): number | null {
  if (/^\d+$/.test(name)) return Number(name);
  return GRPC_STATUS[name.toUpperCase()] ?? null;
}

/** `percentage.value` (0..100, fractional allowed); absent = 100%, as Istio. */
export function percentOf(p: Percent | undefined, legacy?: number): number {
  if (p !== undefined) return Math.max(0, Math.min(100, p.value));
  if (legacy !== undefined) return Math.max(0, Math.min(100, legacy));
  return 100;
}

export function faultPolicy(f: HTTPFaultInjection | undefined): FaultPolicy | null {
  if (f === undefined) return null;
  const d = f.delay;
  const a = f.abort;
  const delay = d !== undefined && d.fixedDelayMs !== undefined ? { ms: d.fixedDelayMs, percent: percentOf(d.percentage, d.percent) } : null;
  let abort: FaultPolicy['abort'] = null;
  if (a !== undefined) {
    const grpc = a.grpcStatus !== undefined ? grpcStatusCode(a.grpcStatus) : null;
    // http2Error aborts reset the stream; on HTTP/1.1 that is a closed connection, Envoy's 503 text otherwise.
    if (a.httpStatus !== undefined || grpc !== null) abort = { httpStatus: a.httpStatus ?? 200, grpcStatus: grpc, percent: percentOf(a.percentage) };
  }
  return delay === null && abort === null ? null : { delay, abort };
}

export function corsPolicy(c: CorsSpec | undefined): CorsPolicy | null {
  if (c === undefined) return null;
  const origins: StringMatcher[] = [];
  for (const o of c.allowOrigins ?? []) {
    const m = compileStringMatch(o).matcher;
    if (m !== null) origins.push(m);
  }
  // `allowOrigin` (deprecated): exact strings.
  for (const o of c.allowOrigin ?? []) origins.push({ kind: 'exact', value: o, ignoreCase: false });
  const join = (l: readonly string[] | undefined): string | null => (l === undefined || l.length === 0 ? null : l.join(','));
  return {
    allowOrigins: origins,
    allowMethods: join(c.allowMethods),
    allowHeaders: join(c.allowHeaders),
    exposeHeaders: join(c.exposeHeaders),
    maxAge: c.maxAgeMs === undefined ? null : String(Math.floor(c.maxAgeMs / 1000)),
    allowCredentials: c.allowCredentials === true,
    unmatchedPreflights: c.unmatchedPreflights === 'IGNORE' ? 'IGNORE' : 'FORWARD',
  };
}

/** RE2's `\1` references -> JavaScript's `$1`; a literal `$` is doubled. */
function jsSubstitution(re2: string): string {
  return re2.replace(/\$/g, '$$$$').replace(/\\(\d)/g, '$$$1');
}

/**
 * Istio's rewrite: `uriRegexRewrite` -> Envoy `regex_rewrite` (every match in the path replaced);
 * `uri` -> `prefix_rewrite` of what the match consumed: the prefix of a prefix match, the whole
 * path of an exact match, `/` when the rule has no uri match (Envoy's route matches prefix `/`).
 * After a regex match there is no prefix: Istio rewrites the whole path (regex `^.*$`).
 * `error` is a pattern JavaScript cannot compile (the rewrite is then skipped).
 */
export function routeRewrite(rw: HTTPRewrite | undefined, m: HTTPMatchRequest | null): { rewrite: RouteRewrite | null; error: string | null } {
  if (rw === undefined) return { rewrite: null, error: null };
  let path: PathRewrite | null = null;
  let error: string | null = null;
  const rr = rw.uriRegexRewrite;
  if (rr !== undefined) {
    try {
      path = { kind: 'regex', regex: new RegExp(rr.match, 'g'), substitution: jsSubstitution(rr.rewrite) };
    } catch (err) {
      error = `regex ${JSON.stringify(rr.match)} does not compile: ${(err as Error).message}`;
    }
  } else if (rw.uri !== undefined) {
    const u = m?.uri;
    if (u === undefined || (u.exact === undefined && u.prefix === undefined && u.regex === undefined)) path = { kind: 'prefix', replacement: rw.uri, matchedLength: 1 };
    else if (u.prefix !== undefined) path = { kind: 'prefix', replacement: rw.uri, matchedLength: u.prefix.length };
    else if (u.exact !== undefined) path = { kind: 'prefix', replacement: rw.uri, matchedLength: -1 };
    else path = { kind: 'regex', regex: /^.*$/, substitution: jsSubstitution(rw.uri) };
  }
  if (path === null && rw.authority === undefined) return { rewrite: null, error };
  return { rewrite: { path, authority: rw.authority ?? null }, error };
}

/** The upstream path after `rw`; the query string is kept as it came (Envoy rewrites the path only). */
export function rewritePath(rw: PathRewrite, path: string): string {
  const q = path.indexOf('?');
  const p = q < 0 ? path : path.slice(0, q);
  const rest = q < 0 ? '' : path.slice(q);
  if (rw.kind === 'prefix') {
    const n = rw.matchedLength < 0 ? p.length : Math.min(rw.matchedLength, p.length);
    return rw.replacement + p.slice(n) + rest;
  }
  rw.regex.lastIndex = 0;
  return p.replace(rw.regex, rw.substitution) + rest;
}
