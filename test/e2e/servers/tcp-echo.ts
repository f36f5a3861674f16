// Stand-in for Istio's tcp-echo sample (seed S10), run inside a namespace:
//   node dist/test/e2e/servers/tcp-echo.js [--port 3333] [--version v1] [--node NAME]
// On connect it greets first, as the seed's pods do ("Welcome, you are connected to node ...",
// here with the version so a test knows which "pod" it reached), then echoes every line back.
// Logs `Received: <line> from=<ip:port>` per line and `READY` once listening.

import net from 'node:net';
import os from 'node:os';
import { parseArgs } from 'node:util';

const { values: flags } = parseArgs({
  options: {
    port: { type: 'string', default: '3333' },
    version: { type: 'string', default: 'v1' },
    node: { type: 'string', default: os.hostname() },
    host: { type: 'string', default: '0.0.0.0' },
  },
});

const version = flags.version as string;

function greeting(socket: net.Socket): string {
  return [
    `Welcome, you are connected to node ${flags.node}, version ${version}.`,
    `Running on Pod tcp-echo-${version}.`,
    'In namespace default.',
    `With IP address ${socket.localAddress ?? '?'}.`,
    'Service default.',
    '',
  ].join('\n');
}

function onConnection(socket: net.Socket): void {
  const from = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
  let pending = '';
  socket.setEncoding('utf8');
  socket.write(greeting(socket));
  socket.on('data', (chunk: string) => {
    const parts = (pending + chunk).split('\n');
    pending = parts.pop() as string;
    for (const line of parts) {
      process.stdout.write(`Received: ${line} from=${from}\n`);
      socket.write(`${line}\n`);
    }
  });
  // Half-close from the client: echo what is left, then close our side too (as nc -N expects).
  socket.on('end', () => {
    if (pending !== '') {
      process.stdout.write(`Received: ${pending} from=${from}\n`);
      socket.write(pending);
    }
    socket.end();
  });
  socket.on('error', () => socket.destroy());
}

const server = net.createServer({ allowHalfOpen: true }, onConnection);
server.on('error', (err) => {
  process.stderr.write(`tcp-echo: ${err.message}\n`);
  process.exit(1);
});
server.listen(Number(flags.port), flags.host, () => process.stdout.write('READY\n'));
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0));
