// `sluice validate`: load the given files/directories and list every problem, errors first.
// The CLI (proxy/cli.ts) prints the lines and exits 0 when `ok`, 1 otherwise.

import type { ConfigMessage } from './compile/snapshot';
import { ConfigErrorCode } from './errors';
import { loadPaths, type LoadOptions } from './resources/load';

export interface ValidateResult {
  /** No error-level message (warnings allowed). */
  readonly ok: boolean;
  /** `FILE:DOC: KIND/NAME: field.path: message`, errors first, then warnings, each in load order. */
  readonly lines: string[];
  /** The same messages with their level and stable code, in the same order as `lines`. */
  readonly messages: readonly ConfigMessage[];
}

/**
 * Warnings at run time that `validate` reports as errors: what Istio would reject although sluice
 * can run it, and certificate files that are missing or do not parse.
 */
const ERRORS_IN_VALIDATE: ReadonlySet<string> = new Set([ConfigErrorCode.ISTIO_REJECTS, ConfigErrorCode.CERT_FILE]);

export function validatePaths(paths: readonly string[], opts: LoadOptions): ValidateResult {
  const messages = loadPaths(paths, opts).messages.map((m) => (ERRORS_IN_VALIDATE.has(m.code) ? { ...m, level: 'error' as const } : m));
  const ordered = [...messages.filter((m) => m.level === 'error'), ...messages.filter((m) => m.level === 'warning')];
  return { ok: !ordered.some((m) => m.level === 'error'), lines: ordered.map((m) => m.text), messages: ordered };
}
