// Server-level endpoints: /ready, /server_info, /listeners and the POST-only controls
// /healthcheck/fail|ok, /logging, /quitquitquit (Envoy
// server_info_handler.cc, listeners_handler.cc, server_cmd_handler.cc).

import { LOG_LEVELS, normalizeLogLevel } from '../../observe/log';
import { json, text, wantsJson, type Endpoint } from '../endpoint';

/** `0.0.0.0:15001` / `[::]:15001` -> address + port, for the JSON listener status. */
export function splitHostPort(address: string): { address: string; port_value: number } {
  const i = address.lastIndexOf(':');
  if (i < 0) return { address, port_value: 0 };
  let host = address.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { address: host, port_value: Number(address.slice(i + 1)) };
}

export const serverEndpoints: readonly Endpoint[] = [
  {
    path: '/ready',
    mutates: false,
    help: 'print server state, return 200 if LIVE and every configured listener is bound, otherwise return 503 (with why)',
    handle(env) {
      const state = env.ctx.state();
      const problems = env.ctx.notReady?.() ?? [];
      return text(state + '\n' + problems.map((p) => p + '\n').join(''), state === 'LIVE' && problems.length === 0 ? 200 : 503);
    },
  },
  {
    path: '/server_info',
    mutates: false,
    help: 'print server version/status information',
    handle(env) {
      const info = env.ctx.serverInfo();
      const uptime = Math.floor((Date.now() - env.startedAt) / 1000) + 's';
      // state and uptime are the admin's own view; the runtime's fields (version, node, ...) win otherwise.
      return json({ uptime_current_epoch: uptime, uptime_all_epochs: uptime, ...info, state: env.ctx.state() });
    },
  },
  {
    path: '/listeners',
    mutates: false,
    help: 'print listener info (?format=json)',
    handle(env, query) {
      const listeners = env.ctx.listeners();
      if (wantsJson(query)) {
        return json({ listener_statuses: listeners.map((l) => ({ name: l.name, local_address: { socket_address: splitHostPort(l.address) } })) });
      }
      let out = '';
      for (const l of listeners) out += l.name + '::' + l.address + '\n';
      return text(out);
    },
  },
  {
    path: '/healthcheck/fail',
    mutates: true,
    help: 'cause the server to fail health checks (state DRAINING)',
    handle(env) {
      env.ctx.setHealthCheckFailed(true);
      return text('OK\n');
    },
  },
  {
    path: '/healthcheck/ok',
    mutates: true,
    help: 'cause the server to pass health checks',
    handle(env) {
      env.ctx.setHealthCheckFailed(false);
      return text('OK\n');
    },
  },
  {
    path: '/logging',
    mutates: true,
    help: 'change the log level (?level=trace|debug|info|warning|error|critical|off)',
    handle(env, query) {
      const level = query.get('level');
      if (level === null) return text('usage: POST /logging?level=<' + LOG_LEVELS.join('|') + '>\nactive loggers:\n  sluice: ' + env.log.level + '\n');
      const normalized = normalizeLogLevel(level);
      if (normalized === null) return text(`unknown level "${level}"; use one of ${LOG_LEVELS.join(', ')}\n`, 400);
      env.ctx.setLogLevel(normalized);
      return text('active loggers:\n  sluice: ' + normalized + '\n');
    },
  },
  {
    path: '/quitquitquit',
    mutates: true,
    help: 'exit the server',
    handle(env) {
      return { status: 200, contentType: 'text/plain; charset=UTF-8', body: 'OK\n', after: () => env.ctx.quit() };
    },
  },
];
