// How a data-plane port (gateway servers, the sidecar capture port, the HTTP proxy port) is bound.
//
// In a cluster worker (`--concurrency N`, N > 1) on a Node that has `reusePort` (22.12+, 23.1+, so
// the Dockerfile's current LTS) on Linux, every worker binds the port itself with SO_REUSEPORT
// (`exclusive`, so cluster does not route the listen through the primary) and the kernel spreads
// new connections over the workers' sockets. Otherwise cluster's round-robin, the only choice on
// Node 20: the primary accepts every connection and passes it to a worker over IPC, a
// single-threaded hop per connection, and the worker's server has no socket of
// its own to set TCP_NODELAY on once (accept-handles.ts). One process (`--concurrency 1`) binds
// plainly. A port of 0 is never bound with reusePort: each worker would get a port of its own.

import cluster from 'node:cluster';
import type net from 'node:net';

/** Node's `reusePort` listen option exists (v22.12.0 / v23.1.0 on) and balances (Linux). */
export function reusePortSupported(version: string = process.versions.node, platform: string = process.platform): boolean {
  if (platform !== 'linux') return false;
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major >= 24 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

/** The listen options of a data-plane port in this process. */
export function dataPortListenOptions(host: string, port: number): net.ListenOptions {
  if (port === 0 || !cluster.isWorker || !reusePortSupported()) return { host, port };
  // @types/node 20 does not know `reusePort`.
  return { host, port, exclusive: true, reusePort: true } as net.ListenOptions;
}
