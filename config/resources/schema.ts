// Declarative field tables for Istio objects, and the one walker that applies them.
//
// Each object type is a table of fields {name, type, required, ...}; `normalise()` walks raw
// YAML/JSON values with it and returns the lowerCamel objects typed in types.ts. Every problem
// is reported (never stop at the first) with the path AS WRITTEN, so `sni_hosts` in the file is
// `sni_hosts` in the message and the user can find it. Rules that span several fields of one
// object (exactly-one-of, regex compiles, ...) are `check` hooks on the table; rules that span a
// whole resource live in the per-kind files; rules that span resources in cross-checks.ts.
//
// Why tables and not hand-written `if` chains: one place decides spelling (camel + snake),
// units (durations -> ms), enums and unknown-field handling, so every field gets them right.

import { ConfigErrorCode, configMessage, type ConfigErrorCodeValue } from '../errors';
import type { ConfigMessage } from '../compile/snapshot';
import type { Origin } from './types';
import { PROTOCOLS } from './types';

// ------------------------------------------------------------------ field types

export type FieldType =
  | { readonly kind: 'string' }
  /**
   * A string in a flow sequence that a YAML 1.2 parser may read as a mapping: `[1.2.3.4, 001:db8::]`
   * parses `001:db8::` as the key `001:db8:` with no value, where Go's YAML (Istio's) reads a
   * string. Such a one-key, valueless mapping is read back as the string it was written as.
   */
  | { readonly kind: 'flowString' }
  | { readonly kind: 'int'; readonly min: number; readonly max: number }
  | { readonly kind: 'number'; readonly min: number; readonly max: number }
  | { readonly kind: 'bool' }
  /** Go/Istio duration string (`1h`, `1.5s`, `500ms`); output in ms, or seconds for `*Secs` fields. */
  | { readonly kind: 'duration'; readonly unit: 'ms' | 's'; readonly atLeastMs: boolean }
  | { readonly kind: 'enum'; readonly values: readonly string[] }
  /** Port protocol: case-insensitive (Istio's protocol.Parse), output upper case. */
  | { readonly kind: 'protocol' }
  | { readonly kind: 'object'; readonly schema: ObjectSchema }
  | { readonly kind: 'array'; readonly of: FieldType; readonly nonEmpty: boolean }
  /** Keys kept as written (labels, header names...), optionally lower-cased (header names). */
  | { readonly kind: 'map'; readonly of: FieldType; readonly lowerKeys: boolean }
  /** Opaque mapping kept as is (e.g. localityLbSetting, which sluice does not act on). */
  | { readonly kind: 'any' }
  /** Accepted silently and dropped (Kubernetes bookkeeping such as metadata.uid). */
  | { readonly kind: 'ignore' };

export interface FieldSpec {
  /** lowerCamel name as in Istio's JSON (and types.ts unless `out` says otherwise). */
  readonly name: string;
  readonly type: FieldType;
  readonly required: boolean;
  /** Output name when it differs (durations: `timeout` -> `timeoutMs`). */
  readonly out: string;
  /** proto snake_case spelling; derived from `name` unless the proto differs (`consecutive_5xx_errors`). */
  readonly snake: string;
}

export type Check<T = unknown> = (value: T, loc: Locator, report: Reporter) => void;

export interface ObjectSchema {
  readonly name: string;
  readonly fields: readonly FieldSpec[];
  /** written key (camel or snake) -> field */
  readonly byKey: ReadonlyMap<string, FieldSpec>;
  readonly check: Check<any> | null;
}

// ------------------------------------------------------------------ builders (the table DSL)

export const str = (): FieldType => STRING;
export const flowString = (): FieldType => ({ kind: 'flowString' });
const STRING: FieldType = { kind: 'string' };
export const int = (min = 0, max = 4294967295): FieldType => ({ kind: 'int', min, max });
export const num = (min: number, max: number): FieldType => ({ kind: 'number', min, max });
export const port = (): FieldType => PORT;
const PORT: FieldType = { kind: 'int', min: 1, max: 65535 };
export const bool = (): FieldType => BOOL;
const BOOL: FieldType = { kind: 'bool' };
export const duration = (unit: 'ms' | 's' = 'ms'): FieldType => ({ kind: 'duration', unit, atLeastMs: false });
/**
 * A duration Istio checks with its ValidateDuration (pkg/config/validation/agent): at least 1ms
 * and a whole number of milliseconds. Most durations of DestinationRule and VirtualService are.
 */
export const msDuration = (unit: 'ms' | 's' = 'ms'): FieldType => ({ kind: 'duration', unit, atLeastMs: true });
export const enumOf = (...values: string[]): FieldType => ({ kind: 'enum', values });
export const protocol = (): FieldType => ({ kind: 'protocol' });
export const obj = (schema: ObjectSchema): FieldType => ({ kind: 'object', schema });
export const arr = (of: FieldType, nonEmpty = false): FieldType => ({ kind: 'array', of, nonEmpty });
export const map = (of: FieldType, lowerKeys = false): FieldType => ({ kind: 'map', of, lowerKeys });
export const strMap = (): FieldType => map(STRING);
export const strList = (nonEmpty = false): FieldType => arr(STRING, nonEmpty);
export const any = (): FieldType => ({ kind: 'any' });
export const ignore = (): FieldType => ({ kind: 'ignore' });

export interface FieldOptions {
  readonly required?: boolean;
  readonly out?: string;
  readonly snake?: string;
}

export function field(name: string, type: FieldType, o: FieldOptions = {}): FieldSpec {
  return { name, type, required: o.required === true, out: o.out ?? name, snake: o.snake ?? toSnake(name) };
}

export const required = (name: string, type: FieldType, o: FieldOptions = {}): FieldSpec => field(name, type, { ...o, required: true });

export function schema(name: string, fields: readonly FieldSpec[], check: Check<any> | null = null): ObjectSchema {
  const byKey = new Map<string, FieldSpec>();
  for (const f of fields) {
    byKey.set(f.name, f);
    byKey.set(f.snake, f);
  }
  return { name, fields, byKey, check };
}

/** `sniHosts` -> `sni_hosts`, `http1MaxPendingRequests` -> `http1_max_pending_requests`. */
export function toSnake(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
}

// ------------------------------------------------------------------ where things were written

/**
 * Remembers, for every normalised object and array, the path where it was written and the keys
 * as the user spelled them, so later rules (per kind, cross-resource) can name `spec.tls[0].
 * match[0].sni_hosts` although they only see the normalised `sniHosts`.
 */
export class Locator {
  // Plain Maps, not WeakMaps: a Locator lives for one load, and every object it describes is held
  // by the load's result anyway; hundreds of thousands of WeakMap entries (ephemerons) made GC a
  // fifth of loading 10,000 ServiceEntries.
  private readonly paths = new Map<object, string>();
  private readonly keys = new Map<object, ReadonlyMap<string, string>>();
  private readonly invalid = new Map<object, Set<string>>();

  remember(value: object, path: string, writtenKeys?: ReadonlyMap<string, string>): void {
    this.paths.set(value, path);
    if (writtenKeys !== undefined) this.keys.set(value, writtenKeys);
  }

  /** Records that field `name` of `value` was written but rejected (so rules over it can stay quiet). */
  rejected(value: object, name: string): void {
    let set = this.invalid.get(value);
    if (set === undefined) this.invalid.set(value, (set = new Set()));
    set.add(name);
  }

  /** Whether field `name` of `value` was written but rejected: a rule should not report it again as missing or zero. */
  wasRejected(value: object | null | undefined, name: string): boolean {
    return value != null && this.invalid.get(value)?.has(name) === true;
  }

  /** Path of `value` itself, or of its field `name` (as written; camel when absent), or of `[index]` in that field. */
  at(value: object, name?: string, index?: number): string {
    let p = this.paths.get(value) ?? '?';
    if (name !== undefined) p = join(p, this.keys.get(value)?.get(name) ?? name);
    if (index !== undefined) p += `[${index}]`;
    return p;
  }
}

function join(path: string, key: string): string {
  const k = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? key : JSON.stringify(key);
  if (path === '') return k;
  return k.startsWith('"') ? `${path}[${k}]` : `${path}.${k}`;
}

// ------------------------------------------------------------------ reporting

/** Collects messages about one resource (or one document) in `FILE:DOC: KIND/NAME: path: msg` form. */
export class Reporter {
  constructor(
    private readonly out: ConfigMessage[],
    readonly origin: Origin,
    /** `ServiceEntry/cnn`, or null for document-level problems. */
    readonly resource: string | null,
  ) {}

  error(code: ConfigErrorCodeValue, path: string | null, message: string): void {
    this.out.push(configMessage('error', code, { origin: this.origin, resource: this.resource, path: path === '' ? null : path }, message));
  }

  warn(code: ConfigErrorCodeValue, path: string | null, message: string): void {
    this.out.push(configMessage('warning', code, { origin: this.origin, resource: this.resource, path: path === '' ? null : path }, message));
  }
}

// ------------------------------------------------------------------ the walker

/** Absent marker: the field was missing or invalid, so it is left out of the output. */
const ABSENT = undefined;

export function normaliseObject(raw: unknown, s: ObjectSchema, path: string, loc: Locator, report: Reporter): Record<string, unknown> | undefined {
  if (!isMapping(raw)) {
    report.error(ConfigErrorCode.INVALID_FIELD, path, `expected a mapping, got ${describe(raw)}`);
    return ABSENT;
  }
  // First pass: match written keys to fields, so unknown and doubly-spelled keys are found.
  const written = new Map<string, string>(); // field name -> key as written
  for (const key of Object.keys(raw)) {
    const f = s.byKey.get(key);
    if (f === undefined) {
      report.warn(ConfigErrorCode.UNKNOWN_FIELD, path, `unknown field "${key}"`);
      continue;
    }
    const earlier = written.get(f.name);
    if (earlier !== undefined) {
      report.error(ConfigErrorCode.INVALID_FIELD, path, `"${earlier}" and "${key}" are the same field; set only one`);
      continue;
    }
    written.set(f.name, key);
  }
  // Second pass in table order, so the output's key order does not depend on the input's.
  const out: Record<string, unknown> = {};
  const rejected: string[] = [];
  for (const f of s.fields) {
    const key = written.get(f.name);
    const value = key === undefined ? undefined : raw[key];
    if (value === undefined || value === null) {
      // YAML `field:` with nothing is null; protobuf JSON treats null as unset.
      if (f.required) report.error(ConfigErrorCode.REQUIRED, join(path, key ?? f.name), 'missing required field');
      continue;
    }
    const v = normaliseValue(value, f.type, join(path, key!), loc, report);
    if (v !== ABSENT) out[f.out] = v;
    else if (f.type.kind !== 'ignore') rejected.push(f.out);
  }
  loc.remember(out, path, written);
  for (const name of rejected) loc.rejected(out, name);
  if (s.check !== null) s.check(out, loc, report);
  return out;
}

function normaliseValue(raw: unknown, t: FieldType, path: string, loc: Locator, report: Reporter): unknown {
  switch (t.kind) {
    case 'string':
      if (typeof raw === 'string') return raw;
      return fail(report, path, `expected a string, got ${describe(raw)}`);
    case 'flowString': {
      if (typeof raw === 'string') return raw;
      const keys = isMapping(raw) ? Object.keys(raw) : [];
      if (keys.length === 1 && raw !== null && (raw as Record<string, unknown>)[keys[0]!] === null) return keys[0] + ':';
      return fail(report, path, `expected a string, got ${describe(raw)}`);
    }
    case 'int': {
      const n = typeof raw === 'string' && /^-?\d+$/.test(raw) ? Number(raw) : raw; // proto JSON allows quoted ints
      if (typeof n === 'number' && Number.isInteger(n) && n >= t.min && n <= t.max) return n;
      return fail(report, path, `expected an integer between ${t.min} and ${t.max}, got ${describe(raw)}`);
    }
    case 'number':
      if (typeof raw === 'number' && Number.isFinite(raw) && raw >= t.min && raw <= t.max) return raw;
      return fail(report, path, t.max === Number.MAX_VALUE ? `expected a number >= ${t.min}, got ${describe(raw)}` : `expected a number between ${t.min} and ${t.max}, got ${describe(raw)}`);
    case 'bool':
      if (typeof raw === 'boolean') return raw;
      return fail(report, path, `expected true or false, got ${describe(raw)}`);
    case 'duration': {
      const ns = parseDurationNs(raw);
      if (ns === null) return fail(report, path, `invalid duration ${describe(raw)}; expected e.g. "500ms", "1.5s", "1m", "1h"`);
      if (t.atLeastMs && ns < 1e6) return fail(report, path, 'duration must be greater than 1ms');
      if (t.atLeastMs && Math.round(ns) % 1e6 !== 0) return fail(report, path, 'only durations to ms precision are supported');
      return t.unit === 's' ? ns / 1e9 : nsToMs(ns);
    }
    case 'enum':
      if (typeof raw === 'string' && t.values.includes(raw)) return raw;
      return fail(report, path, enumMessage(raw, t.values));
    case 'protocol': {
      const up = typeof raw === 'string' ? raw.toUpperCase() : null;
      if (up !== null && (PROTOCOLS as readonly string[]).includes(up)) return up;
      return fail(report, path, `unknown protocol ${describe(raw)}; expected one of ${PROTOCOLS.join(', ')}`);
    }
    case 'object':
      return normaliseObject(raw, t.schema, path, loc, report);
    case 'array': {
      if (!Array.isArray(raw)) return fail(report, path, `expected a list, got ${describe(raw)}`);
      if (t.nonEmpty && raw.length === 0) return fail(report, path, 'must not be empty', ConfigErrorCode.REQUIRED);
      const out: unknown[] = [];
      for (let i = 0; i < raw.length; i++) {
        const v = raw[i] === null ? fail(report, `${path}[${i}]`, 'expected a value, got null') : normaliseValue(raw[i], t.of, `${path}[${i}]`, loc, report);
        // Keep indexes aligned with the file even when an item is invalid (messages name indexes).
        out.push(v === ABSENT ? null : v);
      }
      loc.remember(out, path);
      return out;
    }
    case 'map': {
      if (!isMapping(raw)) return fail(report, path, `expected a mapping, got ${describe(raw)}`);
      const out: Record<string, unknown> = {};
      const written = new Map<string, string>();
      for (const key of Object.keys(raw)) {
        const k = t.lowerKeys ? key.toLowerCase() : key;
        const v = normaliseValue(raw[key], t.of, join(path, key), loc, report);
        if (v !== ABSENT) out[k] = v;
        written.set(k, key);
      }
      loc.remember(out, path, written);
      return out;
    }
    case 'any':
      if (isMapping(raw)) return raw;
      return fail(report, path, `expected a mapping, got ${describe(raw)}`);
    case 'ignore':
      return ABSENT;
  }
}

function fail(report: Reporter, path: string, message: string, code: ConfigErrorCodeValue = ConfigErrorCode.INVALID_FIELD): undefined {
  report.error(code, path, message);
  return ABSENT;
}

function enumMessage(raw: unknown, values: readonly string[]): string {
  if (typeof raw === 'string') {
    const up = raw.toUpperCase();
    if (values.includes(up)) return `invalid value "${raw}"; did you mean "${up}"? (values are case-sensitive)`;
  }
  return `invalid value ${describe(raw)}; expected one of ${values.join(', ')}`;
}

export function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** How a bad value is shown in a message: strings quoted, structures by shape. */
export function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

// ------------------------------------------------------------------ durations

const UNIT_NS: Readonly<Record<string, number>> = { ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
const DURATION_PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

/** Go's time.ParseDuration grammar (what Istio accepts): `1h30m`, `1.5s`, `500ms`, `0`. Null if invalid or negative. */
export function parseDurationNs(raw: unknown): number | null {
  if (raw === 0 || raw === '0') return 0;
  if (typeof raw !== 'string' || raw === '') return null;
  let total = 0;
  DURATION_PART.lastIndex = 0;
  while (DURATION_PART.lastIndex < raw.length) {
    const start = DURATION_PART.lastIndex;
    const m = DURATION_PART.exec(raw);
    if (m === null || m.index !== start) return null;
    total += Number(m[1]) * UNIT_NS[m[2]!]!;
  }
  return total;
}

/** Whole milliseconds, rounding up so that a non-zero duration never becomes 0 (= "disabled" in Istio). */
function nsToMs(ns: number): number {
  return Math.ceil(Math.round(ns) / 1e6);
}
