// Deep freezing for the snapshot (STYLE.md rule 3: fastify's clone -> validate -> deepFreeze).
// `Object.freeze` does not stop `Map.set`/`Set.add`, so the compiler builds its maps and sets as
// ImmutableMap/ImmutableSet, whose mutators throw; `deepFreeze` then freezes every plain object and
// array reachable from the root. A snapshot that cannot change is what makes a reload a single
// reference swap with open connections safely finishing on the old one.

class ImmutableMap<K, V> extends Map<K, V> {
  constructor(entries: Iterable<readonly [K, V]>) {
    super();
    // Map's constructor would call our throwing `set`; fill through the base method instead.
    for (const [k, v] of entries) Map.prototype.set.call(this, k, v);
  }
  override set(_key: K, _value: V): this {
    throw new TypeError('snapshot maps are immutable');
  }
  override delete(_key: K): boolean {
    throw new TypeError('snapshot maps are immutable');
  }
  override clear(): void {
    throw new TypeError('snapshot maps are immutable');
  }
}

class ImmutableSet<T> extends Set<T> {
  constructor(values: Iterable<T>) {
    super();
    for (const v of values) Set.prototype.add.call(this, v);
  }
  override add(_value: T): this {
    throw new TypeError('snapshot sets are immutable');
  }
  override delete(_value: T): boolean {
    throw new TypeError('snapshot sets are immutable');
  }
  override clear(): void {
    throw new TypeError('snapshot sets are immutable');
  }
}

export function frozenMap<K, V>(entries: Iterable<readonly [K, V]>): ReadonlyMap<K, V> {
  return Object.freeze(new ImmutableMap(entries));
}

export function frozenSet<T>(values: Iterable<T>): ReadonlySet<T> {
  return Object.freeze(new ImmutableSet(values));
}

/**
 * Freeze `root` and everything reachable from it (objects, arrays, Map/Set values). RegExps are
 * left alone: they are never global/sticky here, so matching does not write `lastIndex`.
 */
export function deepFreeze<T>(root: T): T {
  const seen = new Set<object>();
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object' || seen.has(v) || v instanceof RegExp) continue;
    seen.add(v);
    if (v instanceof Map) {
      for (const [k, val] of v) stack.push(k, val);
    } else if (v instanceof Set) {
      for (const val of v) stack.push(val);
    } else {
      for (const key of Object.keys(v)) stack.push((v as Record<string, unknown>)[key]);
    }
    Object.freeze(v);
  }
  return root;
}
