// The PATCH bodies kubectl sends: JSON merge patch (RFC 7386; `kubectl apply` on custom resources),
// strategic merge patch (`kubectl apply` on built-in kinds) and server-side apply (`--server-side`).
// Strategic merge is approximated: lists of objects merge by their key (`name`, else `port`...)
// and `$setElementOrder/FIELD` says which elements remain, the other `$` directives are dropped.
// Enough for the objects tests apply; not a conformance implementation.

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObject(v: unknown): v is { [k: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return patch;
  const out: { [k: string]: Json } = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k] ?? null, v);
  }
  return out;
}

const MERGE_KEYS = ['name', 'port', 'containerPort', 'ip', 'type'];

export function strategicMergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return patch;
  const out: { [k: string]: Json } = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$')) continue;
    if (v === null) {
      delete out[k];
      continue;
    }
    const order = patch[`$setElementOrder/${k}`];
    out[k] = Array.isArray(v) ? mergeList(out[k], v, Array.isArray(order) ? order : null) : strategicMergePatch(out[k] ?? null, v);
  }
  // A list whose elements all stay but one changed arrives as its order only.
  for (const [k, v] of Object.entries(patch)) {
    const m = /^\$setElementOrder\/(.+)$/.exec(k);
    if (m !== null && !(m[1]! in patch) && Array.isArray(v)) out[m[1]!] = mergeList(out[m[1]!], [], v);
  }
  return out;
}

function mergeList(target: Json | undefined, patch: Json[], order: Json[] | null): Json[] {
  // The element order names exactly the merge key (`{port: 80}` for Service ports); else guess.
  const first = order?.find(isObject);
  const sample = patch.find(isObject);
  const key = first !== undefined ? Object.keys(first)[0] : sample === undefined ? undefined : MERGE_KEYS.find((k) => k in sample);
  if (key === undefined || !Array.isArray(target)) return patch.filter((p) => !(isObject(p) && p['$patch'] === 'delete'));
  const id = (e: Json): string => (isObject(e) ? JSON.stringify(e[key] ?? null) : JSON.stringify(e));
  const byKey = new Map<string, Json>(target.map((e) => [id(e), e]));
  for (const p of patch) {
    if (isObject(p) && p['$patch'] === 'delete') byKey.delete(id(p));
    else byKey.set(id(p), strategicMergePatch(byKey.get(id(p)) ?? null, p));
  }
  if (order === null) return [...byKey.values()];
  return order.map((o) => byKey.get(id(o))).filter((e): e is Json => e !== undefined);
}
