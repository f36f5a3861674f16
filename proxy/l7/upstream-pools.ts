// The pool a forwarded request takes its upstream connection from: HTTP/2 clusters (the compiler's
// `http2`: GRPC/HTTP2 ports, h2UpgradePolicy UPGRADE) multiplex streams on one connection
// (h2-upstream.ts); every other cluster pools HTTP/1.1 keep-alive connections (h1-upstream.ts).

import type { StatsStore } from '../observe/stats';
import type { UpstreamCluster } from '../upstream/cluster';
import type { UpstreamHost } from '../upstream/host';
import { poolFor, type RequestPool } from './h1-upstream';
import { h2PoolFor } from './h2-upstream';

export function requestPoolFor(cluster: UpstreamCluster, host: UpstreamHost, sni: string | null, store: StatsStore): RequestPool {
  return cluster.config.http2 === true ? h2PoolFor(cluster, host, sni, store) : poolFor(cluster, host, sni, store);
}
