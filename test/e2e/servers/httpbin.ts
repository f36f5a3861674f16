// Stand-in for the seed's httpbin (S7-S9), run inside the "httpbin" pod namespace behind its sidecar:
//   node dist/test/e2e/servers/httpbin.js [--port 8000]
// GET /ip      -> {"origin": "<client address as the app sees it>"}
// GET /headers -> {"headers": {<request headers, lower-case>}}
// One stdout line per request: `<method> <path> from=<ip:port> xfcc=<x-forwarded-client-cert or ->`,
// and `READY` once listening.

import http from 'node:http';
import { parseArgs } from 'node:util';

const { values: flags } = parseArgs({ options: { port: { type: 'string', default: '8000' } } });

const server = http.createServer((req, res) => {
  const from = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
  const xfcc = req.headers['x-forwarded-client-cert'];
  process.stdout.write(`${req.method ?? '?'} ${req.url ?? '?'} from=${from} xfcc=${typeof xfcc === 'string' ? xfcc : '-'}\n`);
  const body = req.url === '/headers' ? { headers: req.headers } : req.url === '/ip' ? { origin: req.socket.remoteAddress } : null;
  res.writeHead(body === null ? 404 : 200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body ?? { error: 'not found' }) + '\n');
});
server.listen(Number(flags.port), '0.0.0.0', () => process.stdout.write('READY\n'));
