// Normalised Istio networking resources: what the loader hands the compiler.
//
// Field names are Istio's lowerCamel JSON names (the loader also accepts the proto snake_case
// spelling and rewrites it, as Istio's jsonpb does). Every field sluice acts on is modelled,
// even where the data plane does not act on it yet; README.md ("Istio fields") says which ones
// sluice honours. Enums are kept as Istio spells them (upper case). Durations are parsed to
// milliseconds by the loader (`1.5s` -> 1500) so that nothing downstream parses strings.
//
// Optional fields are `undefined` when absent: the compiler applies Istio's defaults, because
// "absent" and "zero" mean different things in Istio (e.g. `tls: {}` on a Gateway = PASSTHROUGH).

export type Kind = 'ServiceEntry' | 'Gateway' | 'VirtualService' | 'DestinationRule' | 'AuthorizationPolicy';
export const KINDS: readonly Kind[] = ['ServiceEntry', 'Gateway', 'VirtualService', 'DestinationRule', 'AuthorizationPolicy'];
export const API_VERSIONS = ['networking.istio.io/v1alpha3', 'networking.istio.io/v1beta1', 'networking.istio.io/v1'] as const;
/** AuthorizationPolicy's group and versions (security.istio.io; v1beta1 and v1 are the same schema). */
export const SECURITY_API_VERSIONS = ['security.istio.io/v1beta1', 'security.istio.io/v1'] as const;
/** The apiVersions a kind may be written with. */
export function apiVersionsOf(kind: Kind): readonly string[] {
  return kind === 'AuthorizationPolicy' ? SECURITY_API_VERSIONS : API_VERSIONS;
}

/** Where a resource came from: used in every message about it (`FILE:DOC: KIND/NAME: field: msg`). */
export interface Origin {
  readonly file: string;
  /** 1-based index of the YAML document in the file (items of a `kind: List` share their document's index). */
  readonly doc: number;
}

export interface Metadata {
  readonly name: string;
  readonly namespace: string; // defaulted to the proxy's --namespace by the loader when absent
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

interface ResourceBase<K extends Kind, S> {
  readonly kind: K;
  readonly apiVersion: string;
  readonly metadata: Metadata;
  readonly spec: S;
  readonly origin: Origin;
}

export type ServiceEntry = ResourceBase<'ServiceEntry', ServiceEntrySpec>;
export type Gateway = ResourceBase<'Gateway', GatewaySpec>;
export type VirtualService = ResourceBase<'VirtualService', VirtualServiceSpec>;
export type DestinationRule = ResourceBase<'DestinationRule', DestinationRuleSpec>;
export type AuthorizationPolicy = ResourceBase<'AuthorizationPolicy', AuthorizationPolicySpec>;
export type Resource = ServiceEntry | Gateway | VirtualService | DestinationRule | AuthorizationPolicy;

/** Everything loaded from all sources, grouped by kind, in load order. Frozen. */
export interface Resources {
  readonly serviceEntries: readonly ServiceEntry[];
  readonly gateways: readonly Gateway[];
  readonly virtualServices: readonly VirtualService[];
  readonly destinationRules: readonly DestinationRule[];
  /** security.istio.io AuthorizationPolicy (absent = none). */
  readonly authorizationPolicies?: readonly AuthorizationPolicy[];
}

// ---------------------------------------------------------------- AuthorizationPolicy

export interface AuthzSource {
  readonly principals?: readonly string[];
  readonly notPrincipals?: readonly string[];
  readonly requestPrincipals?: readonly string[];
  readonly notRequestPrincipals?: readonly string[];
  readonly namespaces?: readonly string[];
  readonly notNamespaces?: readonly string[];
  readonly ipBlocks?: readonly string[];
  readonly notIpBlocks?: readonly string[];
  readonly remoteIpBlocks?: readonly string[];
  readonly notRemoteIpBlocks?: readonly string[];
}

export interface AuthzOperation {
  readonly hosts?: readonly string[];
  readonly notHosts?: readonly string[];
  readonly ports?: readonly string[];
  readonly notPorts?: readonly string[];
  readonly methods?: readonly string[];
  readonly notMethods?: readonly string[];
  readonly paths?: readonly string[];
  readonly notPaths?: readonly string[];
}

export interface AuthzCondition {
  readonly key: string;
  readonly values?: readonly string[];
  readonly notValues?: readonly string[];
}

export interface AuthzRule {
  readonly from?: readonly { readonly source?: AuthzSource }[];
  readonly to?: readonly { readonly operation?: AuthzOperation }[];
  readonly when?: readonly AuthzCondition[];
}

export interface AuthorizationPolicySpec {
  readonly selector?: { readonly matchLabels?: Readonly<Record<string, string>> };
  readonly targetRef?: Readonly<Record<string, string>>;
  readonly targetRefs?: readonly Readonly<Record<string, string>>[];
  readonly rules?: readonly AuthzRule[];
  readonly action?: 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';
  readonly provider?: { readonly name?: string };
}

// ---------------------------------------------------------------- shared

/** Istio StringMatch: exactly one of exact | prefix | regex (RE2 syntax, full match). */
export interface StringMatch {
  readonly exact?: string;
  readonly prefix?: string;
  readonly regex?: string;
}

export interface PortSelector {
  readonly number: number;
}

export interface Destination {
  readonly host: string;
  readonly subset?: string;
  readonly port?: PortSelector;
}

export type Percent = { readonly value: number };

// ---------------------------------------------------------------- ServiceEntry

export type Protocol =
  | 'HTTP' | 'HTTPS' | 'GRPC' | 'GRPC-WEB' | 'HTTP2' | 'HTTP_PROXY' | 'MONGO' | 'REDIS' | 'MYSQL'
  | 'TCP' | 'TLS' | 'UDP';
export const PROTOCOLS: readonly Protocol[] = ['HTTP', 'HTTPS', 'GRPC', 'GRPC-WEB', 'HTTP2', 'HTTP_PROXY', 'MONGO', 'REDIS', 'MYSQL', 'TCP', 'TLS', 'UDP'];

export interface ServicePort {
  readonly number: number;
  /** Upper-cased by the loader; undefined = auto-detect, as Istio's UnsupportedProtocol. */
  readonly protocol?: Protocol;
  readonly name: string;
  readonly targetPort?: number;
}

export type Location = 'MESH_EXTERNAL' | 'MESH_INTERNAL';
export type Resolution = 'NONE' | 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN' | 'DYNAMIC_DNS';

export interface WorkloadEntry {
  readonly address?: string;
  /** port name -> port number */
  readonly ports?: Readonly<Record<string, number>>;
  readonly labels?: Readonly<Record<string, string>>;
  readonly network?: string;
  /** `region/zone/subzone` */
  readonly locality?: string;
  readonly weight?: number;
  readonly serviceAccount?: string;
}

/** ServiceEntry's selector (networking.v1 WorkloadSelector). `{}` is allowed: it selects every workload. */
export interface WorkloadSelector {
  readonly labels?: Readonly<Record<string, string>>;
}

/** DestinationRule's selector (type.v1beta1 WorkloadSelector): `matchLabels`, not `labels`. */
export interface MatchLabelsSelector {
  readonly matchLabels?: Readonly<Record<string, string>>;
}

export interface ServiceEntrySpec {
  readonly hosts: readonly string[];
  readonly addresses?: readonly string[];
  readonly ports?: readonly ServicePort[];
  readonly location?: Location;
  readonly resolution?: Resolution;
  readonly endpoints?: readonly WorkloadEntry[];
  readonly workloadSelector?: WorkloadSelector;
  readonly exportTo?: readonly string[];
  readonly subjectAltNames?: readonly string[];
}

// ---------------------------------------------------------------- Gateway

export type ServerTlsMode = 'PASSTHROUGH' | 'SIMPLE' | 'MUTUAL' | 'AUTO_PASSTHROUGH' | 'ISTIO_MUTUAL' | 'OPTIONAL_MUTUAL';
export type TlsProtocolVersion = 'TLS_AUTO' | 'TLSV1_0' | 'TLSV1_1' | 'TLSV1_2' | 'TLSV1_3';

export interface ServerTlsSettings {
  readonly httpsRedirect?: boolean;
  /** Absent inside a present `tls:` block means PASSTHROUGH (enum value 0), as in Istio. */
  readonly mode?: ServerTlsMode;
  readonly serverCertificate?: string;
  readonly privateKey?: string;
  readonly caCertificates?: string;
  readonly caCrl?: string;
  readonly credentialName?: string;
  readonly credentialNames?: readonly string[];
  readonly tlsCertificates?: readonly { readonly serverCertificate?: string; readonly privateKey?: string; readonly caCertificates?: string }[];
  readonly caCertCredentialName?: string;
  readonly subjectAltNames?: readonly string[];
  readonly verifyCertificateSpki?: readonly string[];
  readonly verifyCertificateHash?: readonly string[];
  readonly minProtocolVersion?: TlsProtocolVersion;
  readonly maxProtocolVersion?: TlsProtocolVersion;
  readonly cipherSuites?: readonly string[];
}

export interface GatewayPort {
  readonly number: number;
  readonly protocol: Protocol;
  readonly name?: string;
  readonly targetPort?: number;
}

export interface Server {
  readonly port: GatewayPort;
  readonly bind?: string;
  /** `[namespace/]dnsName`; the loader keeps them as written. */
  readonly hosts: readonly string[];
  readonly tls?: ServerTlsSettings;
  readonly defaultEndpoint?: string;
  readonly name?: string;
}

export interface GatewaySpec {
  readonly servers: readonly Server[];
  readonly selector?: Readonly<Record<string, string>>;
}

// ---------------------------------------------------------------- VirtualService

export interface HTTPMatchRequest {
  readonly name?: string;
  readonly uri?: StringMatch;
  readonly scheme?: StringMatch;
  readonly method?: StringMatch;
  readonly authority?: StringMatch;
  /** header name (lower-cased by the loader) -> match; `{}` = presence. */
  readonly headers?: Readonly<Record<string, StringMatch>>;
  readonly port?: number;
  readonly sourceLabels?: Readonly<Record<string, string>>;
  readonly gateways?: readonly string[];
  readonly queryParams?: Readonly<Record<string, StringMatch>>;
  readonly ignoreUriCase?: boolean;
  readonly withoutHeaders?: Readonly<Record<string, StringMatch>>;
  readonly sourceNamespace?: string;
  readonly statPrefix?: string;
}

export interface HeaderOperations {
  readonly set?: Readonly<Record<string, string>>;
  readonly add?: Readonly<Record<string, string>>;
  readonly remove?: readonly string[];
}

export interface Headers {
  readonly request?: HeaderOperations;
  readonly response?: HeaderOperations;
}

export interface HTTPRouteDestination {
  readonly destination: Destination;
  readonly weight?: number;
  readonly headers?: Headers;
}

export interface HTTPRedirect {
  readonly uri?: string;
  readonly authority?: string;
  readonly port?: number;
  readonly derivePort?: 'FROM_PROTOCOL_DEFAULT' | 'FROM_REQUEST_PORT';
  readonly scheme?: string;
  /** default 301 */
  readonly redirectCode?: number;
}

export interface HTTPDirectResponse {
  readonly status: number;
  readonly body?: { readonly string?: string; readonly bytes?: string };
}

export interface HTTPRewrite {
  readonly uri?: string;
  readonly authority?: string;
  readonly uriRegexRewrite?: { readonly match: string; readonly rewrite: string };
}

export interface HTTPRetry {
  readonly attempts?: number;
  readonly perTryTimeoutMs?: number;
  readonly retryOn?: string;
  readonly retryRemoteLocalities?: boolean;
  readonly retryIgnorePreviousHosts?: boolean;
  readonly backoffMs?: number;
}

export interface HTTPFaultInjection {
  readonly delay?: { readonly fixedDelayMs?: number; readonly percentage?: Percent; readonly percent?: number };
  readonly abort?: { readonly httpStatus?: number; readonly grpcStatus?: string; readonly http2Error?: string; readonly percentage?: Percent };
}

export interface CorsPolicy {
  readonly allowOrigins?: readonly StringMatch[];
  readonly allowOrigin?: readonly string[];
  readonly allowMethods?: readonly string[];
  readonly allowHeaders?: readonly string[];
  readonly exposeHeaders?: readonly string[];
  readonly maxAgeMs?: number;
  readonly allowCredentials?: boolean;
  readonly unmatchedPreflights?: 'UNSPECIFIED' | 'FORWARD' | 'IGNORE';
}

export interface HTTPMirrorPolicy {
  readonly destination: Destination;
  readonly percentage?: Percent;
}

export interface HTTPRoute {
  readonly name?: string;
  readonly match?: readonly HTTPMatchRequest[];
  readonly route?: readonly HTTPRouteDestination[];
  readonly redirect?: HTTPRedirect;
  readonly directResponse?: HTTPDirectResponse;
  readonly delegate?: { readonly name?: string; readonly namespace?: string };
  readonly rewrite?: HTTPRewrite;
  readonly timeoutMs?: number;
  readonly retries?: HTTPRetry;
  readonly fault?: HTTPFaultInjection;
  readonly mirror?: Destination;
  readonly mirrors?: readonly HTTPMirrorPolicy[];
  readonly mirrorPercentage?: Percent;
  readonly corsPolicy?: CorsPolicy;
  readonly headers?: Headers;
}

export interface L4MatchAttributes {
  readonly destinationSubnets?: readonly string[];
  readonly port?: number;
  readonly sourceLabels?: Readonly<Record<string, string>>;
  readonly gateways?: readonly string[];
  readonly sourceNamespace?: string;
}

export interface TLSMatchAttributes extends L4MatchAttributes {
  readonly sniHosts: readonly string[];
}

export interface RouteDestination {
  readonly destination: Destination;
  readonly weight?: number;
}

export interface TLSRoute {
  readonly match: readonly TLSMatchAttributes[];
  readonly route?: readonly RouteDestination[];
}

export interface TCPRoute {
  readonly match?: readonly L4MatchAttributes[];
  readonly route?: readonly RouteDestination[];
}

export interface VirtualServiceSpec {
  readonly hosts?: readonly string[];
  /** Absent = [mesh], as in Istio. Kept as written; the compiler resolves names. */
  readonly gateways?: readonly string[];
  readonly http?: readonly HTTPRoute[];
  readonly tls?: readonly TLSRoute[];
  readonly tcp?: readonly TCPRoute[];
  readonly exportTo?: readonly string[];
}

// ---------------------------------------------------------------- DestinationRule

export type SimpleLB = 'UNSPECIFIED' | 'LEAST_CONN' | 'RANDOM' | 'PASSTHROUGH' | 'ROUND_ROBIN' | 'LEAST_REQUEST';

export interface ConsistentHashLB {
  readonly httpHeaderName?: string;
  readonly httpCookie?: { readonly name: string; readonly path?: string; readonly ttlMs?: number };
  readonly useSourceIp?: boolean;
  readonly httpQueryParameterName?: string;
  readonly ringHash?: { readonly minimumRingSize?: number };
  readonly maglev?: { readonly tableSize?: number };
  readonly minimumRingSize?: number;
}

/** Slow start (Envoy slow_start_config). */
export interface WarmupConfiguration {
  readonly durationMs: number;
  /** 0..100; Envoy's default 10. */
  readonly minimumPercent?: number;
  /** >= 0; Envoy's default 1.0 (linear). */
  readonly aggression?: number;
}

export interface LocalityLoadBalancerSetting {
  readonly enabled?: boolean;
  /** `from` locality (terminal `*` allowed) -> weights per `to` locality, summing to 100. */
  readonly distribute?: readonly { readonly from?: string; readonly to?: Readonly<Record<string, number>> }[];
  /** Region -> region. */
  readonly failover?: readonly { readonly from?: string; readonly to?: string }[];
  /** Label keys (or key=value) ordering endpoints into priorities. */
  readonly failoverPriority?: readonly string[];
}

export interface LoadBalancerSettings {
  readonly simple?: SimpleLB;
  readonly consistentHash?: ConsistentHashLB;
  readonly localityLbSetting?: LocalityLoadBalancerSetting;
  /** Deprecated by Istio for `warmup`. */
  readonly warmupDurationSecs?: number;
  readonly warmup?: WarmupConfiguration;
}

export interface ConnectionPoolSettings {
  readonly tcp?: {
    readonly maxConnections?: number;
    readonly connectTimeoutMs?: number;
    readonly tcpKeepalive?: { readonly probes?: number; readonly timeMs?: number; readonly intervalMs?: number };
    readonly maxConnectionDurationMs?: number;
    readonly idleTimeoutMs?: number;
  };
  readonly http?: {
    readonly http1MaxPendingRequests?: number;
    readonly http2MaxRequests?: number;
    readonly maxRequestsPerConnection?: number;
    readonly maxRetries?: number;
    readonly idleTimeoutMs?: number;
    readonly h2UpgradePolicy?: 'DEFAULT' | 'DO_NOT_UPGRADE' | 'UPGRADE';
    readonly useClientProtocol?: boolean;
    readonly maxConcurrentStreams?: number;
  };
}

export interface OutlierDetection {
  /** Deprecated by Istio (consecutiveGatewayErrors / consecutive5xxErrors). */
  readonly consecutiveErrors?: number;
  readonly consecutive5xxErrors?: number;
  readonly consecutiveGatewayErrors?: number;
  readonly splitExternalLocalOriginErrors?: boolean;
  readonly consecutiveLocalOriginFailures?: number;
  readonly intervalMs?: number;
  readonly baseEjectionTimeMs?: number;
  readonly maxEjectionPercent?: number;
  readonly minHealthPercent?: number;
}

export type ClientTlsMode = 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL';

export interface ClientTLSSettings {
  readonly mode?: ClientTlsMode;
  readonly clientCertificate?: string;
  readonly privateKey?: string;
  readonly caCertificates?: string;
  readonly credentialName?: string;
  readonly subjectAltNames?: readonly string[];
  readonly sni?: string;
  readonly insecureSkipVerify?: boolean;
  readonly caCrl?: string;
}

export interface PortTrafficPolicy {
  readonly port?: PortSelector;
  readonly loadBalancer?: LoadBalancerSettings;
  readonly connectionPool?: ConnectionPoolSettings;
  readonly outlierDetection?: OutlierDetection;
  readonly tls?: ClientTLSSettings;
}

export interface TrafficPolicy {
  readonly loadBalancer?: LoadBalancerSettings;
  readonly connectionPool?: ConnectionPoolSettings;
  readonly outlierDetection?: OutlierDetection;
  readonly tls?: ClientTLSSettings;
  readonly portLevelSettings?: readonly PortTrafficPolicy[];
  readonly tunnel?: { readonly protocol?: string; readonly targetHost: string; readonly targetPort: number };
  readonly proxyProtocol?: { readonly version?: 'V1' | 'V2' };
}

export interface Subset {
  readonly name: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly trafficPolicy?: TrafficPolicy;
}

export interface DestinationRuleSpec {
  readonly host: string;
  readonly trafficPolicy?: TrafficPolicy;
  readonly subsets?: readonly Subset[];
  readonly exportTo?: readonly string[];
  readonly workloadSelector?: MatchLabelsSelector;
}
