// Process logger: sluice's own diagnostics (startup, reloads, config warnings, admin errors) as
// pino JSON lines on stderr. stdout is reserved for the access log, so `sluice run | ...` and
// `kubectl logs` consumers that parse access lines never meet a diagnostic line.
//
// Writes are synchronous on purpose: these lines are rare (not per request), and the ones that
// matter most are written just before the process exits (fatal config, uncaught error), when an
// asynchronous buffer would be lost.

import pino from 'pino';

/** Envoy's level names (admin `/logging?level=`) mapped to pino's. */
const LEVEL_ALIASES: Readonly<Record<string, pino.LevelWithSilent>> = {
  trace: 'trace',
  debug: 'debug',
  info: 'info',
  warn: 'warn',
  warning: 'warn',
  error: 'error',
  critical: 'fatal',
  fatal: 'fatal',
  off: 'silent',
  silent: 'silent',
};

/** The pino level for an Envoy- or pino-style level name, or null when it is not one. */
export function normalizeLogLevel(level: string): pino.LevelWithSilent | null {
  return LEVEL_ALIASES[level.toLowerCase()] ?? null;
}

export const LOG_LEVELS: readonly string[] = Object.keys(LEVEL_ALIASES);

/**
 * The process logger. Level: the argument, else SLUICE_LOG_LEVEL, else `info`. An unknown level is
 * an error (a typo would otherwise silently hide or flood diagnostics).
 */
export function createLogger(level?: string, destination: pino.DestinationStream = pino.destination({ dest: 2, sync: true })): pino.Logger {
  const wanted = level ?? process.env['SLUICE_LOG_LEVEL'] ?? 'info';
  const normalized = normalizeLogLevel(wanted);
  if (normalized === null) {
    throw Object.assign(new Error(`unknown log level "${wanted}" (SLUICE_LOG_LEVEL or --log-level); use one of ${LOG_LEVELS.join(', ')}`), { code: 'PRX_ERR_LOG_LEVEL' });
  }
  return pino({ name: 'sluice', level: normalized, base: { pid: process.pid } }, destination);
}
