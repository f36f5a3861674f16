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
 * A plain object or array that is already frozen is taken as deep-frozen and not walked: only
 * frozenMap/frozenSet freeze shallowly (they are walked, once each), and the loaded Resources the
 * snapshot carries were deep-frozen by the loader; re-walking them was most of this function's
 * cost at 10,000 services (issue 6).
 */
export function deepFreeze<T>(root: T): T {
  return freezeWalk(root, false);
}

/**
 * A snapshot that crossed a thread (structured clone, config/sources/compile-worker.ts) arrives as
 * plain, unfrozen objects: Maps and Sets lose their Immutable subclass and nothing is frozen. This
 * gives every Map/Set back its immutable prototype (the internal slots are Map's/Set's own, so
 * every read method still works) and freezes the rest, as compile() left it.
 */
export function refreeze<T>(root: T): T {
  return freezeWalk(root, true);
}

function freezeWalk<T>(root: T, restorePrototypes: boolean): T {
  const seenCollections = new Set<object>();
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object' || v instanceof RegExp) continue;
    if (v instanceof Map) {
      if (seenCollections.has(v)) continue;
      seenCollections.add(v);
      if (restorePrototypes && Object.getPrototypeOf(v) === Map.prototype) Object.setPrototypeOf(v, ImmutableMap.prototype);
      for (const [k, val] of v) stack.push(k, val);
    } else if (v instanceof Set) {
      if (seenCollections.has(v)) continue;
      seenCollections.add(v);
      if (restorePrototypes && Object.getPrototypeOf(v) === Set.prototype) Object.setPrototypeOf(v, ImmutableSet.prototype);
      for (const val of v) stack.push(val);
    } else {
      if (Object.isFrozen(v)) continue;
      for (const key of Object.keys(v)) stack.push((v as Record<string, unknown>)[key]);
    }
    Object.freeze(v);
  }
  return root;
}

