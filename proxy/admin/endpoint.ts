// The shape of one admin endpoint and its reply. Endpoints are plain functions from (environment,
// query) to a reply object; server.ts owns sockets, method checks and error handling, so a handler
// never touches the HTTP response and a throw in one is always turned into a 500 there.

import type { Logger } from 'pino';
import type { HistogramIntervals } from '../observe/render-stats';
import type { AdminContext } from './context';

export interface AdminReply {
  readonly status: number;
  readonly contentType: string;
  /** Large renders (/stats at 10k clusters) come as Buffers, see render-stats.ts OutputChunks. */
  readonly body: string | Buffer;
  /** Run after the reply has been written (e.g. /quitquitquit exits only once `OK` is sent). */
  readonly after?: () => void;
}

/** What every handler may use: the runtime's context plus the admin's own state. */
export interface AdminEnv {
  readonly ctx: AdminContext;
  readonly intervals: HistogramIntervals;
  readonly log: Logger;
  /** ms since epoch when the admin started, for uptime in /server_info */
  readonly startedAt: number;
}

export interface Endpoint {
  readonly path: string;
  /** Mutating endpoints are POST-only: a GET gets 400 and changes nothing (Envoy admin.cc). */
  readonly mutates: boolean;
  readonly help: string;
  handle(env: AdminEnv, query: URLSearchParams): AdminReply;
}

export const TEXT = 'text/plain; charset=UTF-8';
export const JSON_TYPE = 'application/json';
/** Prometheus text exposition format 0.0.4, as Envoy's /stats/prometheus answers. */
export const PROMETHEUS_TYPE = 'text/plain; version=0.0.4; charset=UTF-8';

export function text(body: string, status = 200): AdminReply {
  return { status, contentType: TEXT, body };
}

export function json(value: unknown, status = 200): AdminReply {
  return { status, contentType: JSON_TYPE, body: JSON.stringify(value, null, 1) + '\n' };
}

/** `?format=json` (Envoy also accepts a bare `?json` on some endpoints; we do not). */
export function wantsJson(query: URLSearchParams): boolean {
  return query.get('format') === 'json';
}
