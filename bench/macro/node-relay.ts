// The floor for the L4 figures: Node's own net sockets joined by sluice's relay (proxy/l4/relay.ts,
// the upstream read with an UpstreamReader, exactly as the TCP proxy does), with nothing else: no
// config, routing, stats, access log or admin. sluice's L4 cost minus this one is what sluice itself
// adds; this one minus HAProxy's is what Node's socket machinery costs.
//
//   node node-relay.js '{"port":N,"upstreamPort":M}'      (run by bench/run.ts as the 'node-relay' peer)

import net from 'node:net';
import { relay } from '../../proxy/l4/relay';
import { UpstreamReader } from '../../proxy/l4/upstream-reader';

const HOOKS = { onClose(): void {} };

function ignore(): void {}

function main(): void {
  const { port, upstreamPort } = JSON.parse(process.argv[2] ?? '{}') as { port: number; upstreamPort: number };
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (down) => {
    down.on('error', ignore);
    down.pause(); // held until the upstream is connected, as the TCP proxy does
    const reader = new UpstreamReader();
    const up = net.connect({ host: '127.0.0.1', port: upstreamPort, allowHalfOpen: true, noDelay: true, onread: reader.onread });
    up.on('error', () => down.destroy());
    up.on('connect', () => relay(down, up, null, HOOKS, reader));
  });
  server.listen({ host: '127.0.0.1', port });
  process.on('SIGTERM', () => process.exit(0));
}

main();
