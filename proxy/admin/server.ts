// The admin HTTP server (127.0.0.1:15000 by default) and the two small listeners Istio exposes
// beside it: 15090 `/stats/prometheus` (Prometheus scrapes it) and 15021 `/healthz/ready`
// (Kubernetes readiness probes hit it).
//
// The admin must never take the proxy down: every handler runs inside one try/catch that turns a
// throw into a 500 with the message (and a log line), client errors only destroy that socket, and
// a server error after listen() is logged, not thrown. Endpoints live in handlers/*.ts as a table;
// this file does sockets, routing, the POST-only rule and replies.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { createLogger } from '../observe/log';
import { HistogramIntervals, NO_FILTER, renderPrometheus } from '../observe/render-stats';
import type { StatsStore } from '../observe/stats';
import type { AdminContext } from './context';
import { PROMETHEUS_TYPE, TEXT, text, type AdminEnv, type AdminReply, type Endpoint } from './endpoint';
import { clustersEndpoints } from './handlers/clusters';
import { configDumpEndpoints } from './handlers/config-dump';
import { explainEndpoints } from './handlers/explain';
import { serverEndpoints } from './handlers/server';
import { statsEndpoints } from './handlers/stats';

export interface AdminServer {
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

export interface AdminOptions {
  /** Where handler failures are logged; default: a new process logger on stderr. */
  readonly logger?: Logger;
  /** Histogram interval length for `P50(interval,cumulative)`; default 5 s (Envoy's flush interval). */
  readonly histogramIntervalMs?: number;
  /**
   * Awaited before each request is answered: the multi-worker primary gathers its workers' stats and
   * cluster states here, so every reply reflects all workers at the time of the request.
   */
  readonly beforeRequest?: () => Promise<void>;
}

export const ALL_ENDPOINTS: readonly Endpoint[] = [...statsEndpoints, ...clustersEndpoints, ...configDumpEndpoints, ...serverEndpoints, ...explainEndpoints];

/** Envoy's wording for a GET on a mutating endpoint. */
export const POST_REQUIRED = 'Method GET not allowed, POST required.\n';

function helpText(endpoints: readonly Endpoint[]): string {
  let out = 'admin commands are:\n  /: print this list\n  /help: print this list\n';
  for (const e of [...endpoints].sort((a, b) => (a.path < b.path ? -1 : 1))) {
    out += '  ' + e.path + ': ' + e.help + (e.mutates ? ' (POST)' : '') + '\n';
  }
  return out;
}

/** Route one admin request to its endpoint; pure apart from what the handler itself does. */
export function dispatch(env: AdminEnv, endpoints: ReadonlyMap<string, Endpoint>, help: string, method: string, rawUrl: string): AdminReply {
  let url: URL;
  try {
    url = new URL(rawUrl, 'http://admin.invalid');
  } catch {
    return text('invalid request target\n', 400);
  }
  if (url.pathname === '/' || url.pathname === '/help') return text(help);
  const endpoint = endpoints.get(url.pathname);
  if (endpoint === undefined) return text('invalid path. ' + help, 404);
  if (endpoint.mutates && method !== 'POST') return text(POST_REQUIRED, 400);
  if (!endpoint.mutates && method !== 'GET' && method !== 'HEAD' && method !== 'POST') return text(`Method ${method} not allowed.\n`, 405);
  try {
    return endpoint.handle(env, url.searchParams);
  } catch (err) {
    env.log.error({ err, path: url.pathname }, 'admin handler failed');
    return text(`sluice admin: ${url.pathname} failed: ${(err as Error)?.message ?? String(err)}\n`, 500);
  }
}

function send(res: http.ServerResponse, method: string, reply: AdminReply, log: Logger): void {
  res.writeHead(reply.status, {
    'content-type': reply.contentType,
    'content-length': Buffer.byteLength(reply.body),
    'cache-control': 'no-cache, max-age=0',
    'x-content-type-options': 'nosniff',
  });
  res.end(method === 'HEAD' ? undefined : reply.body);
  const after = reply.after;
  if (after !== undefined) {
    res.once('finish', () => {
      try {
        after();
      } catch (err) {
        log.error({ err }, 'admin post-reply action failed');
      }
    });
  }
}

/** Listen and resolve once bound; rejects (EADDRINUSE, EACCES) instead of crashing. */
function listen(server: http.Server, host: string, port: number, log: Logger, what: string): Promise<AdminServer> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      server.on('error', (err) => log.error({ err }, `${what} server error`));
      const a = server.address() as AddressInfo;
      resolve({
        address: a.address,
        port: a.port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

function guard(server: http.Server, log: Logger, what: string): void {
  // Malformed requests: answer nothing more, free the socket. Node's default would also try to
  // write a 400, which throws if the socket is already gone.
  server.on('clientError', (err, socket) => {
    log.debug({ err }, `${what}: bad client request`);
    socket.destroy();
  });
}

/** The admin interface: GET /, /stats, /clusters, /config_dump, /ready, ... and POST controls. */
export function startAdmin(ctx: AdminContext, host: string, port: number, options: AdminOptions = {}): Promise<AdminServer> {
  const log = options.logger ?? createLogger();
  const env: AdminEnv = { ctx, intervals: new HistogramIntervals(options.histogramIntervalMs), log, startedAt: Date.now() };
  const endpoints = new Map(ALL_ENDPOINTS.map((e) => [e.path, e] as const));
  const help = helpText(ALL_ENDPOINTS);
  const answer = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const method = req.method ?? 'GET';
    let reply: AdminReply;
    try {
      reply = dispatch(env, endpoints, help, method, req.url ?? '/');
    } catch (err) {
      log.error({ err }, 'admin dispatch failed');
      reply = text('sluice admin: internal error\n', 500);
    }
    send(res, method, reply, log);
  };
  const before = options.beforeRequest;
  const server = http.createServer((req, res) => {
    // Bodies are never read; drain them so keep-alive connections stay usable.
    req.resume();
    if (before === undefined) {
      answer(req, res);
      return;
    }
    before().then(
      () => answer(req, res),
      (err: unknown) => {
        log.error({ err }, 'admin: gathering worker state failed');
        send(res, req.method ?? 'GET', text('sluice admin: gathering worker state failed\n', 503), log);
      },
    );
  });
  guard(server, log, 'admin');
  return listen(server, host, port, log, 'admin');
}

/** Istio's 15090: only `GET /stats/prometheus`, for scrapers that must not reach the admin. */
export function startPrometheusListener(stats: StatsStore, host: string, port: number, options: { logger?: Logger; beforeRequest?: () => Promise<void> } = {}): Promise<AdminServer> {
  const log = options.logger ?? createLogger();
  const server = http.createServer(async (req, res) => {
    req.resume();
    if (options.beforeRequest !== undefined) await options.beforeRequest().catch((err: unknown) => log.error({ err }, 'prometheus: gathering worker state failed'));
    const method = req.method ?? 'GET';
    let reply: AdminReply;
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== '/stats/prometheus') reply = text('not found: this port serves /stats/prometheus only\n', 404);
    else if (method !== 'GET' && method !== 'HEAD') reply = text(`Method ${method} not allowed.\n`, 405);
    else {
      try {
        reply = { status: 200, contentType: PROMETHEUS_TYPE, body: renderPrometheus(stats, NO_FILTER) };
      } catch (err) {
        log.error({ err }, 'prometheus render failed');
        reply = text('sluice: rendering stats failed\n', 500);
      }
    }
    send(res, method, reply, log);
  });
  guard(server, log, 'prometheus');
  return listen(server, host, port, log, 'prometheus');
}

/** Istio's 15021: `GET /healthz/ready` 200 when LIVE with every configured listener bound, 503 with the state (and why) otherwise. */
export function startHealthListener(ctx: AdminContext, host: string, port: number, options: { logger?: Logger } = {}): Promise<AdminServer> {
  const log = options.logger ?? createLogger();
  const server = http.createServer((req, res) => {
    req.resume();
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?', 1)[0];
    let reply: AdminReply;
    if (path !== '/healthz/ready') reply = text('not found: this port serves /healthz/ready only\n', 404);
    else {
      try {
        const state = ctx.state();
        const problems = ctx.notReady?.() ?? [];
        reply = state === 'LIVE' && problems.length === 0 ? { status: 200, contentType: TEXT, body: '' } : text(state + '\n' + problems.map((p) => p + '\n').join(''), 503);
      } catch (err) {
        log.error({ err }, 'readiness check failed');
        reply = text('sluice: readiness check failed\n', 500);
      }
    }
    send(res, method, reply, log);
  });
  guard(server, log, 'health');
  return listen(server, host, port, log, 'health');
}
