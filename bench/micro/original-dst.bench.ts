// Per-connection cost of asking the kernel for the original destination (our addon: getsockname +
// getsockopt(SO_ORIGINAL_DST)), side by side with what a gateway listener pays for its destination instead:
// reading socket.localAddress/localPort (Node calls getsockname once, then caches) and an uncached getsockname
// through Node's own binding (the same syscall without our addon around it).
//
// Runs on a plain loopback connection (not redirected: the addon answers null). The redirected path does the
// same two syscalls plus inet_ntop and a 3-element array; test/e2e/capture.test.ts covers its correctness.
//
//   node dist/bench/micro/original-dst.bench.js        ITERATIONS=500000 to change N

import * as net from 'node:net';
import { once } from 'node:events';
import { getOriginalDst, originalDstSupport } from '../../proxy/transport/original-dst';

const ITERATIONS = Number(process.env.ITERATIONS ?? 200_000);
const WARMUP = Math.min(20_000, ITERATIONS);

interface Result {
  readonly name: string;
  readonly nsPerCall: number;
}

/** ns per call of fn over ITERATIONS calls, after a warmup; `sink` defeats dead-code elimination. */
function measure(name: string, fn: () => unknown): Result {
  let sink = 0;
  for (let i = 0; i < WARMUP; i++) if (fn() !== undefined) sink++;
  const start = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) if (fn() !== undefined) sink++;
  const elapsed = Number(process.hrtime.bigint() - start);
  if (sink < 0) console.log(sink);
  return { name, nsPerCall: elapsed / ITERATIONS };
}

interface RawHandle {
  getsockname(out: Record<string, unknown>): number;
}

async function main(): Promise<void> {
  const support = originalDstSupport();
  if (!support.ok) {
    console.error(`original-dst bench: ${support.reason}`);
    process.exitCode = 1;
    return;
  }
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const [socket] = await accepted;

  const handle = (socket as unknown as { _handle: RawHandle })._handle;
  const out: Record<string, unknown> = {};
  const results = [
    measure('getOriginalDst(socket)            [addon: getsockname + getsockopt]', () => getOriginalDst(socket) ?? 0),
    measure('socket.localAddress + localPort    [cached after the first read]', () => (socket.localAddress ?? '') + (socket.localPort ?? 0)),
    measure('_handle.getsockname({})           [uncached, Node binding]', () => handle.getsockname(out)),
  ];

  console.log(`original-dst micro bench: ${ITERATIONS} calls each, node ${process.version}, ${process.platform}/${process.arch}`);
  for (const r of results) console.log(`  ${r.name.padEnd(72)} ${r.nsPerCall.toFixed(0).padStart(7)} ns/call`);
  console.log(JSON.stringify({ bench: 'original-dst', iterations: ITERATIONS, results }));

  client.destroy();
  socket.destroy();
  server.close();
}

void main();
