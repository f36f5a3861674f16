// `sluice validate`: load the given files/directories and list every problem, errors first.
// The CLI (proxy/cli.ts) prints the lines and exits 0 when `ok`, 1 otherwise.

import type { ConfigMessage } from './compile/snapshot';
import { ConfigErrorCode } from './errors';
import { loadFiles, loadPaths, type LoadOptions, type LoadResult, type SourceFile } from './resources/load';

export interface ValidateResult {
  /** No error-level message (warnings allowed). */
  readonly ok: boolean;
  /** `FILE:DOC: KIND/NAME: field.path: message`, errors first, then warnings, each in load order. */
  readonly lines: string[];
  /** The same messages with their level and stable code, in the same order as `lines`. */
  readonly messages: readonly ConfigMessage[];
  /** `FILE:DOC: KIND/NAME (apiVersion)` of every object of a kind sluice does not read, hence did not check. */
  readonly notChecked: readonly string[];
}

/**
 * Warnings at run time that `validate` reports as errors: what Istio would reject although sluice
 * can run it, and certificate files that are missing or do not parse.
 */
const ERRORS_IN_VALIDATE: ReadonlySet<string> = new Set([ConfigErrorCode.ISTIO_REJECTS, ConfigErrorCode.CERT_FILE]);

/**
 * Certificate files are checked (opts.checkFiles: false turns that off), except under the proxy's
 * workload certificate directory (/etc/certs unless opts.uncheckedDir says otherwise): that is
 * mounted into the proxy's container and rarely exists where `validate` runs; the proxy itself
 * warns when a file there is missing.
 */
function withFileChecks(opts: LoadOptions): LoadOptions {
  return { ...opts, checkFiles: opts.checkFiles ?? true, uncheckedDir: opts.uncheckedDir ?? '/etc/certs' };
}

export function validatePaths(paths: readonly string[], opts: LoadOptions): ValidateResult {
  return result(loadPaths(paths, withFileChecks(opts)));
}

/** The same for files already in memory (one document of a corpus, an editor buffer). */
export function validateSources(files: readonly SourceFile[], opts: LoadOptions): ValidateResult {
  return result(loadFiles(files, withFileChecks(opts)));
}

function result(loaded: LoadResult): ValidateResult {
  const notChecked = (loaded.ignored ?? []).map((o) => `${o.origin.file}:${o.origin.doc}: ${o.kind}/${o.name}${o.apiVersion === '' ? '' : ` (${o.apiVersion})`}`);
  const messages = loaded.messages.map((m) => (ERRORS_IN_VALIDATE.has(m.code) ? { ...m, level: 'error' as const } : m));
  const ordered = [...messages.filter((m) => m.level === 'error'), ...messages.filter((m) => m.level === 'warning')];
  return { ok: !ordered.some((m) => m.level === 'error'), lines: ordered.map((m) => m.text), messages: ordered, notChecked };
}
