// /stats (text | json | prometheus), /stats/prometheus and POST /reset_counters
// (§1.7; Envoy docs/root/operations/admin.rst).

import { renderPrometheus, renderStatsJson, renderStatsText, type StatsFilter } from '../../observe/render-stats';
import { PROMETHEUS_TYPE, JSON_TYPE, TEXT, text, type AdminReply, type AdminEnv, type Endpoint } from '../endpoint';

/** Raised for a `?filter=` that is not a valid regular expression: the handler answers 400. */
export class BadStatsQuery extends Error {
  readonly code = 'PRX_ERR_ADMIN_BAD_QUERY';
}

/**
 * `?filter=REGEX` (partial match, like Envoy's RE2 search) and `?usedonly` (present, any value).
 * Envoy uses RE2; we use JS RegExp, which accepts every RE2 pattern sluice users are likely to
 * type (`^cluster\.outbound`, `upstream_cx_total$`), plus backreferences RE2 would reject.
 */
export function parseStatsFilter(query: URLSearchParams): StatsFilter {
  const source = query.get('filter');
  let filter: RegExp | null = null;
  if (source !== null && source !== '') {
    try {
      filter = new RegExp(source);
    } catch (err) {
      throw new BadStatsQuery(`Invalid regex: "${source}": ${(err as Error).message}`);
    }
  }
  return { filter, usedOnly: query.has('usedonly') };
}

function withFilter(query: URLSearchParams, render: (f: StatsFilter) => AdminReply): AdminReply {
  let f: StatsFilter;
  try {
    f = parseStatsFilter(query);
  } catch (err) {
    if (err instanceof BadStatsQuery) return text(err.message + '\n', 400);
    throw err;
  }
  return render(f);
}

function prometheus(env: AdminEnv, query: URLSearchParams): AdminReply {
  return withFilter(query, (f) => ({ status: 200, contentType: PROMETHEUS_TYPE, body: renderPrometheus(env.ctx.stats, f) }));
}

export const statsEndpoints: readonly Endpoint[] = [
  {
    path: '/stats',
    mutates: false,
    help: 'print server stats (?filter=REGEX, ?usedonly, ?format=json|prometheus)',
    handle(env, query) {
      const format = query.get('format');
      if (format === 'prometheus') return prometheus(env, query);
      if (format !== null && format !== 'json' && format !== 'text') return text(`usage: /stats?format=json|prometheus|text, got "${format}"\n`, 400);
      return withFilter(query, (f) =>
        format === 'json'
          ? { status: 200, contentType: JSON_TYPE, body: renderStatsJson(env.ctx.stats, f, env.intervals) }
          : { status: 200, contentType: TEXT, body: renderStatsText(env.ctx.stats, f, env.intervals) },
      );
    },
  },
  {
    path: '/stats/prometheus',
    mutates: false,
    help: 'print server stats in prometheus format',
    handle: prometheus,
  },
  {
    path: '/reset_counters',
    mutates: true,
    help: 'reset all counters to zero',
    handle(env) {
      env.ctx.stats.resetCounters();
      return text('OK\n');
    },
  },
];
