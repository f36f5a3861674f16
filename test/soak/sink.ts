// The soak's upstream, run inside its own namespace: node dist/test/soak/sink.js
//
// TCP :7000. On accept it sends "peer=<ip:port>\n" (the proxy's upstream address, which the
// proxy's access-log line names as UPSTREAM_LOCAL_ADDRESS: the driver uses it to find that line).
// The client sends "up=N down=M seed=S reset=R\n" and N bytes, then half-closes; after the FIN the
// sink answers "<sha256 of the N bytes> <N>\n" and M bytes of ByteStream(S), and ends. reset=1:
// after half the answer (at most 1 MiB) it resets the connection instead, once the peer has read
// what was sent: libuv reports a RST that arrives with unread data as EOF, so only a RST on a
// drained socket shows as ECONNRESET on the other side.
//
// HTTP :8080. `GET|POST /t/<id>?down=M&seed=S&reset=R`: reads the body, answers 200 with
// `x-up-sha256`/`x-up-len` of it and M bytes of ByteStream(S); reset=1 resets the connection after
// half the body (at most 1 MiB). Keep-alive for 10 minutes: the soak's own resets are the only
// upstream closes, so an idle-close race with a pooled connection cannot pass for a proxy fault.
//
// SIGUSR2 closes every connection it holds (the soak's fd check: pooled upstream connections then
// close, and the proxies' fds must come back to their baseline). Prints READY when both listen.

import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { ByteStream, CHUNK } from './stream';

const MIB = 1024 * 1024;
const sockets = new Set<net.Socket>();

function track(s: net.Socket): void {
  sockets.add(s);
  s.once('close', () => sockets.delete(s));
}

/** Writes `left` bytes of `gen` with backpressure; calls `stopAt` instead once `sent` reaches `resetAfter`. */
function pump(out: NodeJS.WritableStream & { writableNeedDrain: boolean }, gen: ByteStream, total: number, resetAfter: number, onReset: () => void, onDone: () => void): void {
  let sent = 0;
  const step = (): void => {
    while (sent < total) {
      if (sent >= resetAfter) {
        // Reset once what we wrote has been read (see the header comment).
        const rst = (): void => void setTimeout(onReset, 300);
        if (out.writableNeedDrain) out.once('drain', rst);
        else rst();
        return;
      }
      const n = Math.min(total - sent, CHUNK, resetAfter - sent);
      sent += n;
      if (!out.write(gen.next(n))) {
        out.once('drain', step);
        return;
      }
    }
    onDone();
  };
  step();
}

function resetPoint(total: number): number {
  return Math.min(MIB, Math.floor(total / 2));
}

function onTcp(s: net.Socket): void {
  track(s);
  s.on('error', () => {});
  s.write(`peer=${s.remoteAddress}:${s.remotePort}\n`);
  let head = Buffer.alloc(0);
  let hdr: Record<string, number> | null = null;
  const hash = crypto.createHash('sha256');
  let got = 0;
  s.on('data', (chunk: Buffer) => {
    let d = chunk;
    if (hdr === null) {
      head = Buffer.concat([head, d]);
      const i = head.indexOf(10);
      if (i < 0) return;
      hdr = Object.fromEntries(head.subarray(0, i).toString().split(' ').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
      d = head.subarray(i + 1);
    }
    got += d.length;
    hash.update(d);
  });
  s.on('end', () => {
    const h = hdr;
    if (h === null) {
      s.end();
      return;
    }
    s.write(`${hash.digest('hex')} ${got}\n`);
    const down = h['down'] ?? 0;
    pump(s, new ByteStream(h['seed'] ?? 0), down, h['reset'] === 1 ? resetPoint(down) : Infinity, () => s.resetAndDestroy(), () => s.end());
  });
}

function onHttp(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://sink');
  const down = Number(url.searchParams.get('down') ?? 0);
  const seed = Number(url.searchParams.get('seed') ?? 0);
  const reset = url.searchParams.get('reset') === '1';
  const hash = crypto.createHash('sha256');
  let got = 0;
  req.on('data', (d: Buffer) => {
    got += d.length;
    hash.update(d);
  });
  req.on('error', () => {});
  res.on('error', () => {});
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(down), 'x-up-sha256': hash.digest('hex'), 'x-up-len': String(got) });
    const socket = req.socket;
    pump(res, new ByteStream(seed), down, reset ? resetPoint(down) : Infinity, () => socket.resetAndDestroy(), () => res.end());
  });
}

const tcp = net.createServer({ allowHalfOpen: true }, onTcp);
const web = http.createServer({ keepAliveTimeout: 600_000, requestTimeout: 0, headersTimeout: 0 }, onHttp);
web.on('connection', track);
web.keepAliveTimeout = 600_000;
let listening = 0;
const ready = (): void => {
  if (++listening === 2) process.stdout.write('READY\n');
};
tcp.listen(7000, '0.0.0.0', ready);
web.listen(8080, '0.0.0.0', ready);
process.on('SIGUSR2', () => {
  for (const s of sockets) s.destroy();
  process.stdout.write(`CLOSED ${sockets.size}\n`);
});
