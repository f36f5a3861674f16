// Test helper (not a test): load YAML text as file `f.yaml` and show messages as `level CODE text`.
import { loadText, type LoadResult } from '../../../../config/resources/load';

export function load(yaml: string, defaultNamespace = 'default'): LoadResult {
  return loadText(yaml, 'f.yaml', { defaultNamespace });
}

/**
 * `level CODE text` of every message but CFG_WARN_NOT_ACTED_ON: that one is about sluice, not the
 * rule a test is about, and not-acted-on.test.ts checks it for every row of its table.
 */
export function messages(yaml: string): string[] {
  return load(yaml).messages.filter((m) => m.code !== 'CFG_WARN_NOT_ACTED_ON').map((m) => `${m.level} ${m.code} ${m.text}`);
}

/** A resource document with the given kind/name and spec YAML (indented by the caller as `spec:` children). */
export function doc(kind: string, name: string, spec: string, apiVersion = 'networking.istio.io/v1'): string {
  return `apiVersion: ${apiVersion}\nkind: ${kind}\nmetadata:\n  name: ${name}\nspec:\n${spec.replace(/^\n/, '').replace(/\s+$/, '')}\n`;
}
