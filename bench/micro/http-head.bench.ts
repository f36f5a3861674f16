// HTTP/1.1 request-head parsing, old vs new, ns per head: llhttp as node:http drives it (the native
// parser behind `_http_common`'s HTTPParser, headers handed to JS as a flat array — before
// node:http builds its IncomingMessage, so the old figure is a lower bound of what the old path
// paid) against proxy/l7/h1-head.ts (findHeadEnd + parseRequestHead, which also classifies the
// headers the proxy acts on). Heads: curl's three-header GET, and a browser-like 13-header GET.
//
//   node dist/bench/micro/http-head.bench.js          ROUNDS=5 N=200000 to change

import { findHeadEnd, parseRequestHead } from '../../proxy/l7/h1-head';

const N = Number(process.env.N ?? 200_000);
const ROUNDS = Number(process.env.ROUNDS ?? 5);

const HEADS: Record<string, Buffer> = {
  curl: Buffer.from('GET /politics HTTP/1.1\r\nHost: edition.cnn.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n', 'latin1'),
  browser: Buffer.from([
    'GET /politics/live-news/index.html?utm_source=feed&page=2 HTTP/1.1',
    'Host: edition.cnn.com',
    'Connection: keep-alive',
    'sec-ch-ua: "Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"',
    'sec-ch-ua-mobile: ?0',
    'sec-ch-ua-platform: "Linux"',
    'Upgrade-Insecure-Requests: 1',
    'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
    'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8',
    'Sec-Fetch-Site: none',
    'Sec-Fetch-Mode: navigate',
    'Accept-Encoding: gzip, deflate, br',
    'Accept-Language: en-US,en;q=0.9',
    'Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark',
    '', '',
  ].join('\r\n'), 'latin1'),
};

// ---- old: llhttp through node's HTTPParser binding (what node:http's server uses)
interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(buf: Buffer): number | Error;
  finish(): void;
  [k: number]: unknown;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { HTTPParser } = require('_http_common') as { HTTPParser: { new (): LlhttpParser; REQUEST: number; kOnHeadersComplete: number; kOnMessageComplete: number } };

let sink = 0;
function onHeadersComplete(_maj: number, _min: number, headers: string[], _method: number, url: string): void {
  sink += headers.length + url.length;
}

function runOld(buf: Buffer, n: number): number {
  const p = new HTTPParser();
  p.initialize(HTTPParser.REQUEST, {}, 60 * 1024, 0);
  p[HTTPParser.kOnHeadersComplete] = onHeadersComplete;
  p[HTTPParser.kOnMessageComplete] = () => undefined;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const r = p.execute(buf); // keep-alive: the parser takes the next message on the same instance
    if (typeof r !== 'number') throw r;
  }
  return Number(process.hrtime.bigint() - t0) / n;
}

function runNew(buf: Buffer, n: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const end = findHeadEnd(buf, 0);
    const h = parseRequestHead(buf, 0, end);
    if (h === null) throw new Error('refused');
    sink += h.raw.length + h.target.length;
  }
  return Number(process.hrtime.bigint() - t0) / n;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

process.stdout.write(`HTTP head parsing, ns per head (median of ${ROUNDS} rounds x ${N}), node ${process.version}\n\n| head | bytes | llhttp (node:http) | h1-head.ts | new/old |\n|---|---|---|---|---|\n`);
for (const [name, buf] of Object.entries(HEADS)) {
  runOld(buf, N / 10);
  runNew(buf, N / 10);
  const olds: number[] = [];
  const news: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    olds.push(runOld(buf, N));
    news.push(runNew(buf, N));
  }
  const o = median(olds);
  const n = median(news);
  process.stdout.write(`| ${name} | ${buf.length} | ${o.toFixed(0)} | ${n.toFixed(0)} | ${(n / o).toFixed(2)} |\n`);
}
if (sink === 42) process.stdout.write('\n');
