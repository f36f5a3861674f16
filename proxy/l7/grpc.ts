// gRPC-specific request handling in the connection manager. `grpc-timeout` (gRPC over HTTP/2:
// `1*8DIGIT unit`, unit H M S m u n) is the client's deadline: Istio sets the routes'
// max_grpc_timeout to 0, which tells Envoy to use the header as the route timeout, however long
// (and to keep the route timeout when the header is absent).

const UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };
const GRPC_TIMEOUT = /^(\d{1,8})([HMSmun])$/;

/** The grpc-timeout header in ms (at least 1), or null when absent or malformed (the route timeout holds). */
export function grpcTimeoutMs(raw: readonly string[]): number | null {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length !== 12 || raw[i]!.toLowerCase() !== 'grpc-timeout') continue;
    const m = GRPC_TIMEOUT.exec(raw[i + 1]!.trim());
    if (m === null) return null;
    return Math.max(1, Math.ceil(Number(m[1]) * UNIT_MS[m[2]!]!));
  }
  return null;
}
