// Istio StringMatch -> compiled matcher, and the per-request test. Regexes are RE2 in Istio and
// must match the whole value (`virtual_service.proto`: "RE2 style regex-based match"; Envoy
// `safe_regex` is a full match), so they are anchored here once. JavaScript's engine accepts
// the RE2 subset Istio users write; a pattern it rejects never matches and is reported.

import type { StringMatch } from '../resources/types';
import type { StringMatcher } from './snapshot';

export interface CompiledOrError {
  readonly matcher: StringMatcher | null;
  readonly error: string | null;
}

const NEVER = /(?!)/;

export function compileStringMatch(m: StringMatch | undefined, ignoreCase = false): CompiledOrError {
  if (m === undefined) return { matcher: null, error: null };
  if (m.exact !== undefined) {
    return { matcher: { kind: 'exact', value: ignoreCase ? m.exact.toLowerCase() : m.exact, ignoreCase }, error: null };
  }
  if (m.prefix !== undefined) {
    return { matcher: { kind: 'prefix', value: ignoreCase ? m.prefix.toLowerCase() : m.prefix, ignoreCase }, error: null };
  }
  if (m.regex !== undefined) {
    try {
      return { matcher: { kind: 'regex', regex: new RegExp(`^(?:${m.regex})$`) }, error: null };
    } catch (err) {
      return { matcher: { kind: 'regex', regex: NEVER }, error: `regex ${JSON.stringify(m.regex)} does not compile: ${(err as Error).message}` };
    }
  }
  // `{}`: for headers this means "present" (virtual_service.proto `headers`); elsewhere "any".
  return { matcher: { kind: 'present' }, error: null };
}

function equalsIgnoreCase(value: string, end: number, expectedLower: string): boolean {
  if (end !== expectedLower.length) return false;
  for (let i = 0; i < end; i++) {
    let c = value.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== expectedLower.charCodeAt(i)) return false;
  }
  return true;
}

function startsWithIgnoreCase(value: string, end: number, prefixLower: string): boolean {
  if (end < prefixLower.length) return false;
  return equalsIgnoreCase(value, prefixLower.length, prefixLower);
}

/**
 * Match `value.slice(0, end)` without slicing (the path before `?`); `end` defaults to the
 * whole string. Only a regex needs the substring.
 */
export function stringMatches(m: StringMatcher, value: string, end: number = value.length): boolean {
  switch (m.kind) {
    case 'exact':
      if (m.ignoreCase) return equalsIgnoreCase(value, end, m.value);
      return end === m.value.length && value.startsWith(m.value);
    case 'prefix':
      if (m.ignoreCase) return startsWithIgnoreCase(value, end, m.value);
      return end >= m.value.length && value.startsWith(m.value);
    case 'regex':
      return m.regex.test(end === value.length ? value : value.slice(0, end));
    case 'present':
      return true;
  }
}
