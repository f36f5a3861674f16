// Every failure the data plane can meet has a stable code, and maps once to what Envoy would do:
// the HTTP status of the local reply, the response flag(s) in the access log, the
// RESPONSE_CODE_DETAILS string, and whether a retry may help. Match on `err.code`, never on text.
// README.md ("Error codes") lists them; test/unit/proxy/errors.test.ts keeps the two in sync.
// Response flags are spelled only here (FLAG); every access-log flag and local reply, and what
// `sluice explain` predicts, comes from this file (test/unit/proxy/errors.test.ts checks the call sites).

/** Envoy's response flags (%RESPONSE_FLAGS%) that sluice sets, by Envoy's long names. */
export const FLAG = {
  NO_ROUTE_FOUND: 'NR',
  NO_CLUSTER_FOUND: 'NC',
  NO_HEALTHY_UPSTREAM: 'UH',
  UPSTREAM_CONNECTION_FAILURE: 'UF',
  UPSTREAM_OVERFLOW: 'UO',
  UPSTREAM_CONNECTION_TERMINATION: 'UC',
  UPSTREAM_REQUEST_TIMEOUT: 'UT',
  UPSTREAM_RETRY_LIMIT_EXCEEDED: 'URX',
  UPSTREAM_PROTOCOL_ERROR: 'UPE',
  DOWNSTREAM_CONNECTION_TERMINATION: 'DC',
  DOWNSTREAM_PROTOCOL_ERROR: 'DPE',
  FAULT_INJECTED: 'FI',
  DELAY_INJECTED: 'DI',
  /** An RBAC filter (AuthorizationPolicy DENY/ALLOW) refused the request or connection. */
  RBAC_ACCESS_DENIED: 'RBAC',
  /** External authorization (AuthorizationPolicy CUSTOM) refused it, or could not be asked. */
  UNAUTHORIZED_EXTERNAL_SERVICE: 'UAEX',
  /** none */
  NONE: '-',
} as const;

export type Flag = (typeof FLAG)[keyof typeof FLAG];

export const ProxyErrorCode = {
  /** No route for the request, no TCP route for the connection. */
  NO_ROUTE: 'PRX_ERR_NO_ROUTE',
  /** No filter chain of the listener accepts the connection (closed, not answered). */
  NO_FILTER_CHAIN: 'PRX_ERR_NO_FILTER_CHAIN',
  /** A route names a cluster the snapshot does not have. */
  NO_CLUSTER: 'PRX_ERR_NO_CLUSTER',
  /** The cluster has no (healthy) endpoint: empty subset, DNS gave nothing, BlackHoleCluster. */
  NO_HEALTHY_UPSTREAM: 'PRX_ERR_NO_HEALTHY_UPSTREAM',
  /** DNS resolution of the cluster's host failed. */
  DNS_FAILED: 'PRX_ERR_DNS_FAILED',
  /** TCP connect refused, unreachable, or reset during connect. */
  UPSTREAM_CONNECT: 'PRX_ERR_UPSTREAM_CONNECT',
  /** connectTimeout elapsed. */
  UPSTREAM_CONNECT_TIMEOUT: 'PRX_ERR_UPSTREAM_CONNECT_TIMEOUT',
  /** TLS handshake with the upstream failed (wrong CA, SAN mismatch, plain port, ...). */
  UPSTREAM_TLS: 'PRX_ERR_UPSTREAM_TLS',
  /** maxConnections / pending requests exceeded. */
  UPSTREAM_OVERFLOW: 'PRX_ERR_UPSTREAM_OVERFLOW',
  /** Upstream closed or reset before a response started. */
  UPSTREAM_RESET: 'PRX_ERR_UPSTREAM_RESET',
  /** Upstream closed or reset after the response started (downstream gets reset, not text). */
  UPSTREAM_RESET_AFTER_RESPONSE: 'PRX_ERR_UPSTREAM_RESET_AFTER_RESPONSE',
  /** Route timeout elapsed before the response. */
  UPSTREAM_TIMEOUT: 'PRX_ERR_UPSTREAM_TIMEOUT',
  /** `retries.perTryTimeout` elapsed on the last attempt. */
  UPSTREAM_PER_TRY_TIMEOUT: 'PRX_ERR_UPSTREAM_PER_TRY_TIMEOUT',
  /** VirtualService `fault.abort` answered the request (the status is the fault's). */
  FAULT_ABORT: 'PRX_ERR_FAULT_ABORT',
  /** Upstream spoke malformed HTTP. */
  UPSTREAM_PROTOCOL: 'PRX_ERR_UPSTREAM_PROTOCOL',
  /** Downstream closed before the exchange completed. */
  DOWNSTREAM_DISCONNECT: 'PRX_ERR_DOWNSTREAM_DISCONNECT',
  /** Downstream sent malformed HTTP (bad request line, no Host, smuggling attempt). */
  DOWNSTREAM_PROTOCOL: 'PRX_ERR_DOWNSTREAM_PROTOCOL',
  /** REGISTRY_ONLY blocked an unknown destination. */
  BLOCKED: 'PRX_ERR_BLOCKED',
  /** An AuthorizationPolicy (DENY match, or no ALLOW match) refused it: Envoy's RBAC filter. */
  RBAC_DENIED: 'PRX_ERR_RBAC_DENIED',
  /** A CUSTOM AuthorizationPolicy matched: sluice has no external authorizer to ask, so denied as ext_authz with failure_mode_allow false. */
  EXT_AUTHZ_DENIED: 'PRX_ERR_EXT_AUTHZ_DENIED',
  /** The SO_ORIGINAL_DST addon is missing or failed: the sidecar cannot know where to go. */
  ORIGINAL_DST: 'PRX_ERR_ORIGINAL_DST',
  /** Downstream TLS handshake (terminating gateway) failed. */
  DOWNSTREAM_TLS: 'PRX_ERR_DOWNSTREAM_TLS',
  /** ClientHello inspection exceeded its size or time bound. */
  INSPECT_LIMIT: 'PRX_ERR_INSPECT_LIMIT',
} as const;

export type ProxyErrorCodeValue = (typeof ProxyErrorCode)[keyof typeof ProxyErrorCode];

export class ProxyError extends Error {
  readonly code: ProxyErrorCodeValue;
  /** Envoy's UPSTREAM_TRANSPORT_FAILURE_REASON, when the failure was a transport one. */
  readonly transportReason: string | null;
  constructor(code: ProxyErrorCodeValue, message: string, options?: { cause?: unknown; transportReason?: string | null }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProxyError';
    this.code = code;
    this.transportReason = options?.transportReason ?? null;
  }
}

/** What Envoy does for a failure: one table, used by the HTTP and TCP paths alike. */
export interface Rescue {
  /** Local reply status (HTTP); 0 = reset/close without a reply. */
  readonly status: number;
  /** Envoy's response flag, or '-' */
  readonly flags: Flag;
  /** RESPONSE_CODE_DETAILS */
  readonly details: string;
  /** Body of the local reply, Envoy's text. */
  readonly body: string;
  /** May another attempt (another endpoint / connection) help? */
  readonly retryable: boolean;
}

const RESCUE: Readonly<Record<ProxyErrorCodeValue, Rescue>> = {
  PRX_ERR_NO_ROUTE: { status: 404, flags: FLAG.NO_ROUTE_FOUND, details: 'route_not_found', body: '', retryable: false },
  PRX_ERR_NO_FILTER_CHAIN: { status: 0, flags: FLAG.NO_ROUTE_FOUND, details: 'filter_chain_not_found', body: '', retryable: false },
  PRX_ERR_NO_CLUSTER: { status: 503, flags: FLAG.NO_CLUSTER_FOUND, details: 'cluster_not_found', body: '', retryable: false },
  PRX_ERR_NO_HEALTHY_UPSTREAM: { status: 503, flags: FLAG.NO_HEALTHY_UPSTREAM, details: 'no_healthy_upstream', body: 'no healthy upstream', retryable: false },
  PRX_ERR_DNS_FAILED: { status: 503, flags: FLAG.NO_HEALTHY_UPSTREAM, details: 'no_healthy_upstream', body: 'no healthy upstream', retryable: false },
  PRX_ERR_UPSTREAM_CONNECT: {
    status: 503, flags: FLAG.UPSTREAM_CONNECTION_FAILURE, details: 'upstream_reset_before_response_started{connection_failure}',
    body: 'upstream connect error or disconnect/reset before headers. reset reason: connection failure', retryable: true,
  },
  PRX_ERR_UPSTREAM_CONNECT_TIMEOUT: {
    status: 503, flags: FLAG.UPSTREAM_CONNECTION_FAILURE, details: 'upstream_reset_before_response_started{connection_timeout}',
    body: 'upstream connect error or disconnect/reset before headers. reset reason: connection timeout', retryable: true,
  },
  PRX_ERR_UPSTREAM_TLS: {
    status: 503, flags: FLAG.UPSTREAM_CONNECTION_FAILURE, details: 'upstream_reset_before_response_started{connection_failure,TLS_error}',
    body: 'upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: TLS error', retryable: true,
  },
  PRX_ERR_UPSTREAM_OVERFLOW: { status: 503, flags: FLAG.UPSTREAM_OVERFLOW, details: 'upstream_reset_before_response_started{overflow}', body: 'upstream connect error or disconnect/reset before headers. reset reason: overflow', retryable: false },
  PRX_ERR_UPSTREAM_RESET: {
    status: 503, flags: FLAG.UPSTREAM_CONNECTION_TERMINATION, details: 'upstream_reset_before_response_started{connection_termination}',
    body: 'upstream connect error or disconnect/reset before headers. reset reason: connection termination', retryable: true,
  },
  PRX_ERR_UPSTREAM_RESET_AFTER_RESPONSE: { status: 0, flags: FLAG.UPSTREAM_CONNECTION_TERMINATION, details: 'upstream_reset_after_response_started{connection_termination}', body: '', retryable: false },
  PRX_ERR_UPSTREAM_TIMEOUT: { status: 504, flags: FLAG.UPSTREAM_REQUEST_TIMEOUT, details: 'upstream_response_timeout', body: 'upstream request timeout', retryable: false },
  PRX_ERR_UPSTREAM_PER_TRY_TIMEOUT: { status: 504, flags: FLAG.UPSTREAM_REQUEST_TIMEOUT, details: 'upstream_per_try_timeout', body: 'upstream request timeout', retryable: true },
  PRX_ERR_FAULT_ABORT: { status: 503, flags: FLAG.FAULT_INJECTED, details: 'fault_filter_abort', body: 'fault filter abort', retryable: false },
  PRX_ERR_UPSTREAM_PROTOCOL: { status: 502, flags: FLAG.UPSTREAM_PROTOCOL_ERROR, details: 'upstream_reset_before_response_started{protocol_error}', body: 'upstream connect error or disconnect/reset before headers. reset reason: protocol error', retryable: false },
  PRX_ERR_DOWNSTREAM_DISCONNECT: { status: 0, flags: FLAG.DOWNSTREAM_CONNECTION_TERMINATION, details: 'downstream_remote_disconnect', body: '', retryable: false },
  PRX_ERR_DOWNSTREAM_PROTOCOL: { status: 400, flags: FLAG.DOWNSTREAM_PROTOCOL_ERROR, details: 'http1.codec_error', body: 'Bad Request', retryable: false },
  PRX_ERR_BLOCKED: { status: 502, flags: FLAG.NONE, details: 'direct_response', body: '', retryable: false },
  PRX_ERR_RBAC_DENIED: { status: 403, flags: FLAG.RBAC_ACCESS_DENIED, details: 'rbac_access_denied_matched_policy[none]', body: 'RBAC: access denied', retryable: false },
  PRX_ERR_EXT_AUTHZ_DENIED: { status: 403, flags: FLAG.UNAUTHORIZED_EXTERNAL_SERVICE, details: 'ext_authz_error', body: '', retryable: false },
  PRX_ERR_ORIGINAL_DST: { status: 0, flags: FLAG.NO_ROUTE_FOUND, details: 'filter_chain_not_found', body: '', retryable: false },
  PRX_ERR_DOWNSTREAM_TLS: { status: 0, flags: FLAG.NONE, details: 'filter_chain_not_found', body: '', retryable: false },
  PRX_ERR_INSPECT_LIMIT: { status: 0, flags: FLAG.NO_ROUTE_FOUND, details: 'filter_chain_not_found', body: '', retryable: false },
};

const UNKNOWN_RESCUE: Rescue = { status: 503, flags: FLAG.UPSTREAM_CONNECTION_TERMINATION, details: 'upstream_reset_before_response_started{unknown}', body: 'upstream connect error or disconnect/reset before headers', retryable: false };

/** Classify any error once. Unknown errors (a bug) are treated as an upstream reset. */
export function rescue(err: unknown): Rescue {
  if (err instanceof ProxyError) return RESCUE[err.code];
  return UNKNOWN_RESCUE;
}

export function rescueFor(code: ProxyErrorCodeValue): Rescue {
  return RESCUE[code];
}

/** Map a Node socket error to our code (connect phase). */
export function connectErrorCode(err: NodeJS.ErrnoException): ProxyErrorCodeValue {
  switch (err.code) {
    case 'ETIMEDOUT':
    case 'PRX_ERR_UPSTREAM_CONNECT_TIMEOUT':
      return ProxyErrorCode.UPSTREAM_CONNECT_TIMEOUT;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NODATA':
    case 'EAI_NONAME':
      return ProxyErrorCode.DNS_FAILED;
    default:
      if (typeof err.code === 'string' && (err.code.startsWith('ERR_SSL') || err.code.startsWith('ERR_TLS') || err.code.includes('CERT') || err.code === 'DEPTH_ZERO_SELF_SIGNED_CERT')) {
        return ProxyErrorCode.UPSTREAM_TLS;
      }
      return ProxyErrorCode.UPSTREAM_CONNECT;
  }
}
