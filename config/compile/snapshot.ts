// The compiled, frozen view of the config that the data plane reads. This file is the contract
// between config/ (which builds it, purely) and proxy/ (which only reads it). See config/ARCHITECTURE.md.
//
// Shape follows Envoy's model as Istio generates it, so names line up with what Istio users see
// in /config_dump, stats and access logs:
//   listener (bind address + port)  ->  filter chains (matched on SNI / transport / dst address)
//   -> one network filter: HTTP connection manager (route config -> virtual hosts -> routes) or
//      TCP proxy (ordered L4 routes) -> weighted clusters -> endpoints.
//
// Everything a request needs is precomputed: host lookups are Map gets, regexes are compiled,
// cluster names are interned strings; the proxy never walks raw resources per connection.

import type { Resources } from '../resources/types';

export type Role = 'sidecar' | 'gateway';
export type OutboundPolicy = 'ALLOW_ANY' | 'REGISTRY_ONLY';

export interface Snapshot {
  readonly role: Role;
  /** Namespace and labels of this proxy: the inputs that chose which resources apply. */
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Content hash of the inputs; changes iff the compiled output may change. */
  readonly version: string;
  /** Sidecar only (Istio: "does not apply to gateways"); gateways always behave as REGISTRY_ONLY-less routers. */
  readonly outboundPolicy: OutboundPolicy;
  /**
   * Listeners keyed by name `<bind>_<port>` (Istio's names: `0.0.0.0_80`, `198.18.0.9_3306`).
   * Gateway: one per Gateway server port; the proxy binds each. Sidecar: virtual listeners that
   * the capture listener dispatches to by original destination: exact `<ip>_<port>` first, then
   * `0.0.0.0_<port>`, else the catch-all below (Envoy `use_original_dst`).
   */
  readonly listeners: ReadonlyMap<string, Listener>;
  /** Sidecar catch-all for destinations no listener claims: PassthroughCluster or BlackHoleCluster. */
  readonly catchAll: CatchAll;
  /**
   * Sidecar only: the inbound side (`virtualInbound`, 15006), what the pod's own ports get
   * (config/compile/inbound.ts). Absent on gateways.
   */
  readonly inbound?: Inbound;
  /**
   * Sidecar with `--dns-capture`: lower-case host -> its addresses (IPv4 and IPv6 literals), what
   * the DNS proxy on 15053 answers A/AAAA queries with (config/compile/dns.ts). Absent = off.
   */
  readonly dns?: ReadonlyMap<string, readonly string[]>;
  /** All clusters any route can reach, plus PassthroughCluster and BlackHoleCluster. */
  readonly clusters: ReadonlyMap<string, Cluster>;
  /** Problems found while compiling that do not stop the proxy (e.g. destination host unknown). */
  readonly warnings: readonly ConfigMessage[];
  /** AuthorizationPolicies that apply to this proxy (config/compile/authorization.ts); absent = none. */
  readonly authorization?: readonly CompiledPolicy[];
  /** The resources this snapshot was compiled from (for /config_dump and explain). */
  readonly resources: Resources;
}

export interface ConfigMessage {
  readonly level: 'error' | 'warning';
  readonly code: string;
  /** `FILE:DOC: KIND/NAME: field.path: message`, ready to print. */
  readonly text: string;
}

// ------------------------------------------------------------------ listeners

/** Transport-level protocol a listener speaks, as Istio's ModelProtocolToListenerProtocol. */
export type ListenerProtocol = 'http' | 'tcp' | 'auto';

export interface Listener {
  /** `0.0.0.0_80` */
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly protocol: ListenerProtocol;
  /**
   * Ordered; the first chain whose match accepts the connection wins. A chain whose match has
   * `serverNames` requires the TLS ClientHello to be inspected first (only then is it sniffed).
   */
  readonly chains: readonly FilterChain[];
  /** True when any chain matches on SNI/ALPN: the listener must read the ClientHello. */
  readonly needsTlsInspection: boolean;
}

export interface FilterChain {
  /** e.g. `0.0.0.0_443|edition.cnn.com` or `default` */
  readonly name: string;
  readonly match: ChainMatch;
  /** Terminate TLS with these settings before the filter; null = bytes go to the filter as they are. */
  readonly tls: DownstreamTls | null;
  readonly filter: NetworkFilter;
}

export interface ChainMatch {
  /** SNI must match one of these (exact, or `*.suffix` wildcard); null = any (incl. no SNI). */
  readonly serverNames: HostSet | null;
  /** Only TLS (`tls`) or only non-TLS (`raw`) first bytes; `any` = no check. */
  readonly transport: 'tls' | 'raw' | 'any';
  /** ALPN must include one of these; null = any. */
  readonly applicationProtocols: readonly string[] | null;
  /** Original destination must fall in one of these CIDRs; null = any. */
  readonly destinationPrefixes: readonly Cidr[] | null;
}

export interface Cidr {
  readonly text: string;   // as written, e.g. `198.18.0.0/16`
  readonly family: 4 | 6;
  readonly bits: number;
  /** network address as a bigint-free byte array (4 or 16 bytes) */
  readonly bytes: readonly number[];
}

/**
 * A set of host names with Istio/Envoy matching: exact names in a Map, `*.suffix` wildcards
 * tried longest suffix first, `*` matches everything. Names are lower-cased.
 */
export interface HostSet {
  readonly exact: ReadonlySet<string>;
  /** Suffixes including the leading dot (`.example.com`), longest first. */
  readonly suffixes: readonly string[];
  readonly any: boolean;
}

export interface DownstreamTls {
  readonly mode: 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL' | 'OPTIONAL_MUTUAL';
  /** File paths (watched and reloaded by the proxy). For ISTIO_MUTUAL: the --certs files. */
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string | null;
  readonly subjectAltNames: readonly string[];
  readonly minVersion: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  readonly maxVersion: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  readonly cipherSuites: readonly string[] | null;
  /** ALPN offered to clients after termination (`h2`, `http/1.1`) */
  readonly alpn: readonly string[];
}

export type NetworkFilter = HttpConnectionManager | TcpProxy;

export interface HttpConnectionManager {
  readonly kind: 'http';
  /** `http.<statPrefix>.` stats: `outbound_0.0.0.0_80` */
  readonly statPrefix: string;
  readonly routeConfig: RouteConfig;
  /** Gateway server with `tls.httpsRedirect` on a plain port: answer 301 to https. */
  readonly httpsRedirect: boolean;
  /**
   * Envoy's forward_client_cert_details as Istio sets it on sidecar inbound: APPEND_FORWARD (the
   * verified client certificate's By/Hash/Subject/URI/DNS appended to x-forwarded-client-cert; the
   * header dropped on a connection without one). Absent: the header is forwarded untouched.
   */
  readonly forwardClientCert?: 'APPEND_FORWARD';
}

export interface TcpProxy {
  readonly kind: 'tcp';
  /** `tcp.<statPrefix>.` stats: the cluster name when there is one route, as Istio does. */
  readonly statPrefix: string;
  /** Ordered; first match wins. Empty = no route (connection closed, flag NR). */
  readonly routes: readonly TcpRoute[];
}

export interface TcpRoute {
  readonly name: string;
  readonly source: RuleSource | null;
  /** Conditions already decided at compile time (gateway, port) are not repeated here. */
  readonly match: L4Match;
  readonly clusters: WeightedClusters;
}

export interface L4Match {
  readonly destinationPrefixes: readonly Cidr[] | null;
  readonly sourcePrefixes: readonly Cidr[] | null;
  /** For tls routes on a passthrough listener: SNI must match. */
  readonly serverNames: HostSet | null;
}

// ------------------------------------------------------------------ HTTP routing

export interface RouteConfig {
  /** Istio names: sidecar `80`; gateway `http.80`; terminated HTTPS `https.443.<portName>.<gw>.<ns>` */
  readonly name: string;
  readonly virtualHosts: readonly VirtualHost[];
  /** lower-cased domain (with and without `:port`) -> virtual host */
  readonly exactDomains: ReadonlyMap<string, VirtualHost>;
  /** `*.suffix` domains, longest suffix first; suffix includes the dot. */
  readonly wildcardDomains: readonly { readonly suffix: string; readonly host: VirtualHost }[];
  /** `*` domain: sidecar allow_any/block_all vhost, or a gateway VS with host `*`; null = 404 NR. */
  readonly defaultHost: VirtualHost | null;
}

export interface VirtualHost {
  /** `edition.cnn.com:80`, `allow_any`, `block_all` */
  readonly name: string;
  readonly domains: readonly string[];
  /** Ordered; first match wins; none = 404 NR (`route_not_found`). */
  readonly routes: readonly Route[];
}

/** Which VirtualService rule a compiled route came from: for logs, explain and config_dump. */
export interface RuleSource {
  readonly kind: 'VirtualService' | 'ServiceEntry' | 'default';
  readonly name: string;
  readonly namespace: string;
  /** index in `http`/`tls`/`tcp` */
  readonly ruleIndex: number;
  /** index in the rule's `match` list (-1 when the rule has no match) */
  readonly matchIndex: number;
}

export interface Route {
  /** ROUTE_NAME in the access log: the VS rule's `name`, `default`, `allow_any`, `block_all`. */
  readonly name: string;
  readonly source: RuleSource | null;
  readonly match: RouteMatch;
  readonly action: RouteAction;
}

export type StringMatcher =
  | { readonly kind: 'exact'; readonly value: string; readonly ignoreCase: boolean }
  | { readonly kind: 'prefix'; readonly value: string; readonly ignoreCase: boolean }
  | { readonly kind: 'regex'; readonly regex: RegExp } // anchored (full match) at compile time
  | { readonly kind: 'present' };

export interface HeaderMatcher {
  /** lower-case */
  readonly name: string;
  readonly matcher: StringMatcher;
  /** true for `withoutHeaders` */
  readonly invert: boolean;
}

export interface RouteMatch {
  /** Path without the query string is matched, as Envoy does. */
  readonly uri: StringMatcher | null;
  readonly scheme: StringMatcher | null;
  readonly method: StringMatcher | null;
  readonly authority: StringMatcher | null;
  readonly headers: readonly HeaderMatcher[];
  readonly queryParams: readonly { readonly name: string; readonly matcher: StringMatcher }[];
}

export type RouteAction = ForwardAction | RedirectAction | DirectResponseAction;

export interface WeightedCluster {
  readonly cluster: string;
  readonly weight: number;
  /** HTTP only: the destination's own `headers` (VS `route[].headers`), applied after the rule's. */
  readonly requestHeaders?: HeaderOps | null;
  readonly responseHeaders?: HeaderOps | null;
}

export interface WeightedClusters {
  /** One entry is the common case: no random draw needed. */
  readonly entries: readonly WeightedCluster[];
  readonly totalWeight: number;
}

export interface HeaderOps {
  readonly set: readonly (readonly [string, string])[];
  readonly add: readonly (readonly [string, string])[];
  readonly remove: readonly string[];
}

/**
 * The path part of `rewrite` as Istio emits it: `prefix_rewrite` replaces the matched prefix
 * (`matchedLength` characters of the path; -1 = the whole path before `?`, for an exact match);
 * `regex_rewrite` (`uriRegexRewrite`, or `uri` after a regex match) substitutes in the path.
 */
export type PathRewrite =
  | { readonly kind: 'prefix'; readonly replacement: string; readonly matchedLength: number }
  | { readonly kind: 'regex'; readonly regex: RegExp; readonly substitution: string };

export interface RouteRewrite {
  readonly path: PathRewrite | null;
  readonly authority: string | null;
}

/**
 * Envoy's retry policy as Istio builds it (route/retry/retry.go). `retryOn` is the list as written
 * (for explain); the booleans and `statusCodes` are what the proxy tests per attempt.
 */
export interface RetryPolicy {
  readonly attempts: number;
  /** 0 = none: each try may take the whole route timeout. */
  readonly perTryTimeoutMs: number;
  readonly retryOn: readonly string[];
  readonly on: RetryOn;
  /** retriable-status-codes (and bare codes in retryOn) */
  readonly statusCodes: readonly number[];
  /** Envoy's base back-off interval (25 ms); the maximum is 10 times it. */
  readonly backoffBaseMs: number;
  readonly retryRemoteLocalities: boolean;
  /** Istio default true: a retry prefers a host other than those already tried. */
  readonly ignorePreviousHosts: boolean;
}

export interface RetryOn {
  readonly fiveXx: boolean;
  readonly gatewayError: boolean;
  readonly reset: boolean;
  readonly resetBeforeRequest: boolean;
  readonly connectFailure: boolean;
  readonly retriable4xx: boolean;
  readonly refusedStream: boolean;
  readonly retriableStatusCodes: boolean;
  readonly envoyRateLimited: boolean;
  /** gRPC statuses from the `grpc-status` response header (cancelled 1, deadline-exceeded 4, resource-exhausted 8, internal 13, unavailable 14). */
  readonly grpcStatuses: readonly number[];
}

/** VS `fault`: percentages are 0..100 (Istio `percentage.value`, default 100). */
export interface FaultPolicy {
  readonly delay: { readonly ms: number; readonly percent: number } | null;
  /** grpcStatus set: a gRPC reply (HTTP 200, `grpc-status`); else `httpStatus`. */
  readonly abort: { readonly httpStatus: number; readonly grpcStatus: number | null; readonly percent: number } | null;
}

/** VS `mirror` / `mirrors`: each a shadow copy of the request to `cluster`, `percent` of the time. */
export interface MirrorPolicy {
  readonly cluster: string;
  readonly percent: number;
}

/** VS `corsPolicy` as Envoy's CORS filter applies it. */
export interface CorsPolicy {
  readonly allowOrigins: readonly StringMatcher[];
  /** joined with `,` once, as Envoy writes them */
  readonly allowMethods: string | null;
  readonly allowHeaders: string | null;
  readonly exposeHeaders: string | null;
  /** seconds, as text; null = not sent */
  readonly maxAge: string | null;
  readonly allowCredentials: boolean;
  /** a preflight from an origin not allowed: FORWARD it upstream (Istio's default) or IGNORE (answer without CORS headers) */
  readonly unmatchedPreflights: 'FORWARD' | 'IGNORE';
}

export interface ForwardAction {
  readonly kind: 'forward';
  readonly clusters: WeightedClusters;
  /** 0 = no timeout (Istio's default). */
  readonly timeoutMs: number;
  readonly rewrite: RouteRewrite | null;
  readonly requestHeaders: HeaderOps | null;
  readonly responseHeaders: HeaderOps | null;
  readonly retry: RetryPolicy | null;
  readonly fault?: FaultPolicy | null;
  readonly mirrors?: readonly MirrorPolicy[];
  readonly cors?: CorsPolicy | null;
}

export interface RedirectAction {
  readonly kind: 'redirect';
  readonly status: number;
  readonly scheme: string | null;
  readonly authority: string | null;
  readonly port: number | null;
  readonly path: string | null;
}

export interface DirectResponseAction {
  readonly kind: 'direct';
  readonly status: number;
  readonly body: string;
  /** RESPONSE_CODE_DETAILS: `direct_response` */
}

// ------------------------------------------------------------------ sidecar inbound

/** Istio's PeerAuthentication mTLS modes (security/v1beta1 `PeerAuthentication.MutualTLS.Mode`). */
export type InboundMtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

export interface Inbound {
  /** Per declared port of this workload's services: chains by mode, then HTTP or TCP to `inbound|P||`. */
  readonly ports: ReadonlyMap<number, Listener>;
  /**
   * Any other port (`InboundPassthroughClusterIpv4`): relayed as TCP to the app on 127.0.0.1 at
   * the original destination's port, after the default mode's chains.
   */
  readonly passthrough: Listener;
  readonly defaultMode: InboundMtlsMode;
}

// ------------------------------------------------------------------ sidecar catch-all

export interface CatchAll {
  /** `PassthroughCluster` (ALLOW_ANY) or `BlackHoleCluster` (REGISTRY_ONLY) for TCP/TLS. */
  readonly tcpCluster: string;
  /** For HTTP on a port with an HTTP listener but an unknown Host: allow_any or block_all vhost. */
  readonly httpHost: VirtualHost;
}

// ------------------------------------------------------------------ clusters

/** Envoy cluster discovery types, from ServiceEntry resolution. */
export type DiscoveryType = 'EDS' | 'STRICT_DNS' | 'LOGICAL_DNS' | 'ORIGINAL_DST' | 'STATIC';

export type LbPolicy =
  | { readonly kind: 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'PASSTHROUGH' }
  | { readonly kind: 'CONSISTENT_HASH'; readonly key: 'sourceIp' | 'header' | 'cookie' | 'queryParameter'; readonly name: string };

export interface Endpoint {
  /** IP literal (STATIC/EDS) or DNS name (STRICT_DNS/LOGICAL_DNS) */
  readonly address: string;
  readonly port: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly weight: number;
  readonly locality: string;
  readonly network: string;
  /** locality failover priority for this proxy (0 = first; config/compile/locality.ts); absent = 0 */
  readonly priority?: number;
}

export interface UpstreamTls {
  readonly mode: 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL';
  /** SNI to send; null = none (or the request's Host when `autoSni`). */
  readonly sni: string | null;
  readonly autoSni: boolean;
  readonly caFile: string | null;
  readonly certFile: string | null;
  readonly keyFile: string | null;
  readonly subjectAltNames: readonly string[];
  readonly insecureSkipVerify: boolean;
  readonly alpn: readonly string[];
}

export interface CircuitBreakers {
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
  readonly maxRequests: number;
  readonly maxRetries: number;
}

export interface Cluster {
  /** `outbound|80||edition.cnn.com`, `PassthroughCluster`, `BlackHoleCluster` */
  readonly name: string;
  /** The SNI/DNS-SRV form `outbound_.80_._.edition.cnn.com`; '' for special clusters. */
  readonly sniName: string;
  readonly type: DiscoveryType;
  /** Service host, port and subset it was built from ('' / 0 for special clusters). */
  readonly host: string;
  readonly port: number;
  readonly subset: string;
  /** The ServiceEntry port protocol, if any: decides HTTP/1.1 pooling vs raw TCP. */
  readonly protocol: string;
  /** Already filtered by the subset's labels. Empty for ORIGINAL_DST and BlackHole. */
  readonly endpoints: readonly Endpoint[];
  readonly lb: LbPolicy;
  readonly connectTimeoutMs: number;
  /**
   * tcp_proxy idle timeout (no bytes either way for this long closes both sides): Istio takes it
   * from `connectionPool.tcp.idleTimeout`, default 1h. 0 = none.
   */
  readonly idleTimeoutMs: number;
  readonly maxRequestsPerConnection: number;
  /**
   * Speak HTTP/2 to the upstream (Istio: port protocol HTTP2/GRPC/GRPC-WEB, or a port name that
   * says so, or DestinationRule h2UpgradePolicy UPGRADE on an HTTP port); absent = HTTP/1.1.
   */
  readonly http2?: boolean;
  readonly tcpKeepalive: { readonly timeMs: number; readonly intervalMs: number; readonly probes: number } | null;
  readonly dnsRefreshMs: number;
  readonly circuitBreakers: CircuitBreakers;
  readonly tls: UpstreamTls | null;
  /** Why this cluster has no endpoints, for explain/UH messages (`subset cnn selects no endpoints`). */
  readonly emptyReason: string | null;
  /** DestinationRule `outlierDetection`; absent/null = none (no host is ever ejected). */
  readonly outlierDetection?: OutlierConfig | null;
  /** `loadBalancer.warmup`: Envoy's slow_start_config for hosts added after the cluster began. */
  readonly warmup?: WarmupConfig | null;
  /**
   * Source address upstream connections are bound to (Envoy upstream_bind_config): `127.0.0.6` on
   * the sidecar's inbound clusters, which `sluice iptables` lets through uncaptured.
   */
  readonly upstreamBindAddress?: string;
  /** ORIGINAL_DST to 127.0.0.1 at the original destination's port (InboundPassthroughClusterIpv4). */
  readonly originalDstOnLoopback?: boolean;
}

/** Envoy's outlier_detection as Istio fills it (cluster_traffic_policy.go applyOutlierDetection). */
export interface OutlierConfig {
  /** 0 = off */
  readonly consecutive5xx: number;
  /** 0 = off (Envoy's enforcing_consecutive_gateway_failure stays 0 unless Istio sets it) */
  readonly consecutiveGatewayErrors: number;
  /** split_external_local_origin_errors: connect failures, resets and timeouts count apart */
  readonly splitLocalOrigin: boolean;
  /** consecutive local-origin failures (only with splitLocalOrigin); 0 = off */
  readonly consecutiveLocalOrigin: number;
  readonly intervalMs: number;
  readonly baseEjectionMs: number;
  /** Envoy's max_ejection_time (default 300 s): the ejection time stops growing there */
  readonly maxEjectionMs: number;
  readonly maxEjectionPercent: number;
  /** Envoy's healthy_panic_threshold: below this share of healthy hosts, all hosts are used; 0 = never */
  readonly minHealthPercent: number;
}

/** Envoy's slow_start_config (Istio `warmup`). */
export interface WarmupConfig {
  readonly durationMs: number;
  /** min_weight_percent (default 10) */
  readonly minWeightPercent: number;
  /** aggression (default 1.0: linear) */
  readonly aggression: number;
}

export const PASSTHROUGH_CLUSTER = 'PassthroughCluster';
export const BLACKHOLE_CLUSTER = 'BlackHoleCluster';
/** Istio's default circuit-breaker thresholds (math.MaxUint32). */
export const ISTIO_MAX_UINT32 = 4294967295;

// ------------------------------------------------------------------ AuthorizationPolicy (compile/authorization.ts)

export type AuthzAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';

/** A list of values with its negation (`principals` / `notPrincipals`); null = not constrained. */
export interface Constraint<T> {
  readonly values: readonly T[] | null;
  readonly notValues: readonly T[] | null;
}

export interface CompiledRule {
  readonly from: readonly CompiledSource[] | null;
  readonly to: readonly CompiledOperation[] | null;
  readonly sni: readonly Constraint<string>[];
  /** A field sluice cannot evaluate is present: an ALLOW rule with it never matches. */
  readonly unsupported: boolean;
}

export interface CompiledSource {
  readonly principals: Constraint<string>;
  readonly namespaces: Constraint<string>;
  readonly ipBlocks: Constraint<Cidr>;
  readonly unsupported: boolean;
}

export interface CompiledOperation {
  readonly hosts: Constraint<string>;
  readonly ports: Constraint<string>;
  readonly methods: Constraint<string>;
  readonly paths: Constraint<string>;
}

export interface CompiledPolicy {
  /** `ns[default]-policy[name]-rule[i]` is built from these (Envoy's RBAC policy naming in Istio). */
  readonly name: string;
  readonly namespace: string;
  readonly action: AuthzAction;
  readonly rules: readonly CompiledRule[];
}
