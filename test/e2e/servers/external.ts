// Stand-in for edition.cnn.com, run inside the "external" namespace:
//   node dist/test/e2e/servers/external.js [--http-port 80] [--https-port 443 --cert F --key F] [--body-size N]
// HTTP  GET /politics -> 301, location: https://<Host without port>/politics, empty body (as the seed log: "301 - 0 0")
// HTTPS GET /politics -> 200 text/html, --body-size deterministic bytes (see politics-body.ts)
// anything else -> 404. HTTPS is served only when --cert and --key are given.
// One stdout line per request: `<method> <path> host=<host> from=<ip:port> scheme=<http|https>`,
// and `READY` once every listener is up, so tests can wait for it and see which requests arrived.

import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_POLITICS_BODY_SIZE, makePoliticsBody, sha256Hex } from './politics-body';

const { values: flags } = parseArgs({
  options: {
    'http-port': { type: 'string', default: '80' },
    'https-port': { type: 'string', default: '443' },
    cert: { type: 'string' },
    key: { type: 'string' },
    'body-size': { type: 'string', default: String(DEFAULT_POLITICS_BODY_SIZE) },
    host: { type: 'string', default: '0.0.0.0' },
  },
});

const body = makePoliticsBody(Number(flags['body-size']));
// Precomputed once: every 200 is the same bytes.
const okHeaders = {
  'content-type': 'text/html; charset=utf-8',
  'content-length': String(body.length),
  'x-body-sha256': sha256Hex(body),
};
const NOT_FOUND = Buffer.from('not found\n');

function logRequest(req: http.IncomingMessage, scheme: string): void {
  const from = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
  process.stdout.write(`${req.method ?? '?'} ${req.url ?? '?'} host=${req.headers.host ?? '-'} from=${from} scheme=${scheme}\n`);
}

function notFound(res: http.ServerResponse): void {
  res.writeHead(404, { 'content-type': 'text/plain', 'content-length': String(NOT_FOUND.length) });
  res.end(NOT_FOUND);
}

function isPolitics(req: http.IncomingMessage): boolean {
  return (req.method === 'GET' || req.method === 'HEAD') && (req.url === '/politics' || req.url?.startsWith('/politics?') === true);
}

function onHttp(req: http.IncomingMessage, res: http.ServerResponse): void {
  logRequest(req, 'http');
  if (!isPolitics(req)) return notFound(res);
  const host = (req.headers.host ?? 'edition.cnn.com').replace(/:\d+$/, '');
  res.writeHead(301, { location: `https://${host}/politics`, 'content-length': '0' });
  res.end();
}

function onHttps(req: http.IncomingMessage, res: http.ServerResponse): void {
  logRequest(req, 'https');
  if (!isPolitics(req)) return notFound(res);
  res.writeHead(200, okHeaders);
  res.end(req.method === 'HEAD' ? undefined : body);
}

function listen(server: http.Server | https.Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, flags.host, () => resolve());
  });
}

async function main(): Promise<void> {
  const servers: (http.Server | https.Server)[] = [];
  const httpServer = http.createServer(onHttp);
  servers.push(httpServer);
  await listen(httpServer, Number(flags['http-port']));
  if (flags.cert && flags.key) {
    const httpsServer = https.createServer({ cert: readFileSync(flags.cert), key: readFileSync(flags.key) }, onHttps);
    servers.push(httpsServer);
    await listen(httpsServer, Number(flags['https-port']));
  } else {
    process.stdout.write('https disabled: no --cert/--key\n');
  }
  const stop = (): void => {
    for (const s of servers) s.close();
    // Keep-alive connections would hold close() open; the harness waits for our exit.
    for (const s of servers) s.closeAllConnections();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.write('READY\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`external: ${(err as Error).message}\n`);
  process.exit(1);
});
