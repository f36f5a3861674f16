// A real HTTP upstream on loopback that records every request it gets (method, path, headers,
// body) and answers with `reply(req, n)` (n: the request's index), default 200 "ok". For tests
// that show what reached the upstream through a gateway or sidecar.

import http from 'node:http';
import type net from 'node:net';

export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  /** header names and values as sent, in order */
  readonly rawHeaders: readonly string[];
  readonly body: string;
}

export interface Reply {
  readonly status?: number;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /** destroy the connection instead of answering */
  readonly reset?: boolean;
  /** answer after this many ms */
  readonly delayMs?: number;
  /** answer once this settles */
  readonly hold?: Promise<void>;
}

export interface RecordingUpstream {
  readonly port: number;
  readonly seen: SeenRequest[];
}

export async function recordingUpstream(
  t: { teardown(fn: () => unknown): void }, reply: (req: SeenRequest, n: number) => Reply = () => ({}),
): Promise<RecordingUpstream> {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const r: SeenRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body };
      const n = seen.length;
      seen.push(r);
      const a = reply(r, n);
      const send = (): void => {
        if (a.reset) {
          req.socket.destroy();
          return;
        }
        const text = a.body ?? 'ok';
        res.writeHead(a.status ?? 200, { 'content-length': String(Buffer.byteLength(text)), ...a.headers });
        res.end(text);
      };
      if (a.hold !== undefined) void a.hold.then(send);
      else if (a.delayMs !== undefined) setTimeout(send, a.delayMs);
      else send();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections(); }));
  return { port: (server.address() as net.AddressInfo).port, seen };
}

export interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly rawHeaders: readonly string[];
  readonly body: string;
}

/** One request over a fresh connection. */
export function send(port: number, o: { method?: string; path?: string; host?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, method: o.method ?? 'GET', path: o.path ?? '/', agent: false,
      headers: { host: o.host ?? 'up.example', ...o.headers },
    }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Wait (bounded: 5 s) for a condition the proxy reaches asynchronously; not a timed assertion. */
export async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!cond()) throw new Error(`gave up waiting for ${what}`);
}
