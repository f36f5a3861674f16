// Config problems: stable codes, and one message shape everywhere (CLI, logs, /config_dump):
//   FILE:DOC: KIND/NAME: field.path: message
// as `sluice validate` prints them (CLI). Errors reject the config (a running proxy
// keeps its last good snapshot); warnings are printed and the config is used.

import type { ConfigMessage } from './compile/snapshot';
import type { Origin } from './resources/types';

export const ConfigErrorCode = {
  /** The file could not be read (missing, permission). */
  READ: 'CFG_ERR_READ',
  /** The YAML/JSON does not parse. */
  PARSE: 'CFG_ERR_PARSE',
  /** `kind` is not a string. */
  UNKNOWN_KIND: 'CFG_ERR_UNKNOWN_KIND',
  /** A kind sluice does not act on (PeerAuthentication, a Gateway API Gateway, a Service...): skipped, one warning per kind. */
  IGNORED_KIND: 'CFG_WARN_IGNORED_KIND',
  /** `apiVersion` is not networking.istio.io/v1alpha3|v1beta1|v1. */
  API_VERSION: 'CFG_ERR_API_VERSION',
  /** A required field is missing. */
  REQUIRED: 'CFG_ERR_REQUIRED',
  /** A field has the wrong type or an invalid value. */
  INVALID_FIELD: 'CFG_ERR_INVALID_FIELD',
  /** A field sluice does not know (warning, as Istio's unknown-field handling). */
  UNKNOWN_FIELD: 'CFG_WARN_UNKNOWN_FIELD',
  /** Two resources of one kind with the same namespace/name. */
  DUPLICATE: 'CFG_ERR_DUPLICATE',
  /** Cross-resource semantics Istio rejects or that cannot work (e.g. SNI host outside VS hosts). */
  SEMANTIC: 'CFG_ERR_SEMANTIC',
  /** Cross-resource problems Istio accepts but that will not do what the user expects. */
  TRAP: 'CFG_WARN_TRAP',
  /**
   * Config Istio rejects but sluice can run as written (e.g. a Gateway server port without a name):
   * a warning when loaded, an error in `sluice validate`, whose answer is "would Istio accept it".
   */
  ISTIO_REJECTS: 'CFG_WARN_ISTIO_REJECTS',
  /**
   * A certificate, key or CA file that does not exist or does not parse: an error in `sluice validate`,
   * a warning when loaded (the file may appear later, e.g. a mounted secret; handshakes fail until it does).
   */
  CERT_FILE: 'CFG_WARN_CERT_FILE',
  /** A field sluice reads and keeps but does not act on yet (not-acted-on.ts lists them, README too). */
  NOT_ACTED_ON: 'CFG_WARN_NOT_ACTED_ON',
  /** A VirtualService/DestinationRule refers to a host no ServiceEntry declares (503 NC at runtime). */
  UNKNOWN_HOST: 'CFG_WARN_UNKNOWN_HOST',
} as const;

export type ConfigErrorCodeValue = (typeof ConfigErrorCode)[keyof typeof ConfigErrorCode];

/** Where in which resource: enough to print `FILE:DOC: KIND/NAME: field.path`. */
export interface Place {
  readonly origin: Origin;
  /** `ServiceEntry/cnn`; null when the problem is with the document itself (parse, kind). */
  readonly resource: string | null;
  /** `spec.hosts[0]`; null for whole-resource problems. */
  readonly path: string | null;
}

export function formatMessage(place: Place, message: string): string {
  let s = `${place.origin.file}:${place.origin.doc}: `;
  if (place.resource !== null) s += `${place.resource}: `;
  if (place.path !== null) s += `${place.path}: `;
  return s + message;
}

export function configMessage(level: 'error' | 'warning', code: ConfigErrorCodeValue, place: Place, message: string): ConfigMessage {
  return { level, code, text: formatMessage(place, message) };
}

/** Thrown by load/validate/compile when at least one error was found; carries all messages. */
export class ConfigError extends Error {
  readonly code = 'CFG_ERR_INVALID';
  readonly messages: readonly ConfigMessage[];
  constructor(messages: readonly ConfigMessage[]) {
    const errors = messages.filter((m) => m.level === 'error');
    super(`${errors.length} config error(s):\n` + errors.map((m) => '  ' + m.text).join('\n'));
    this.name = 'ConfigError';
    this.messages = messages;
  }
}
