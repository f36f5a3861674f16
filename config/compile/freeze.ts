// Deep freezing for the snapshot (fastify's clone -> validate -> deepFreeze).
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
 * left alone: matchers are never global/sticky, and the one global kind (a `uriRegexRewrite`) is
 * only used by String.replace, which resets `lastIndex` itself.
 * A plain object or array that is already frozen is taken as deep-frozen and not walked: only
 * frozenMap/frozenSet freeze shallowly (they are walked, once each), and the loaded Resources the
 * snapshot carries were deep-frozen by the loader; re-walking them was most of this function's
 * cost at 10,000 services.
 */
export function deepFreeze<T>(root: T): T {
  return freezeWalk(root, false);
}

/**
 * A snapshot that crossed a thread (structured clone, config/sources/compile-worker.ts) arrives as
 * plain, unfrozen objects: Maps and Sets lose their Immutable subclass and nothing is frozen. This
 * gives every Map/Set back its immutable prototype (the internal slots are Map's/Set's own, so
 * every read method still works) and freezes the rest, as compile() left it.
 *
 * `links`: the snapshot came in pieces (config/sources/snapshot-pieces.ts) and every BigInt in
 * `root` stands for `links[n]`, an earlier piece already refrozen: put in place, not walked again.
 */
export function refreeze<T>(root: T, links: readonly unknown[] | null = null): T {
  return freezeWalk(root, true, links);
}

function freezeWalk<T>(root: T, restorePrototypes: boolean, links: readonly unknown[] | null = null): T {
  const seenCollections = new Set<object>();
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object' || v instanceof RegExp) continue;
    if (v instanceof Map) {
      if (seenCollections.has(v)) continue;
      seenCollections.add(v);
      if (links !== null) relinkMap(v, links, stack);
      else for (const [k, val] of v) stack.push(k, val);
      if (restorePrototypes && Object.getPrototypeOf(v) === Map.prototype) Object.setPrototypeOf(v, ImmutableMap.prototype);
    } else if (v instanceof Set) {
      if (seenCollections.has(v)) continue;
      seenCollections.add(v);
      if (links !== null) relinkSet(v, links, stack);
      else for (const val of v) stack.push(val);
      if (restorePrototypes && Object.getPrototypeOf(v) === Set.prototype) Object.setPrototypeOf(v, ImmutableSet.prototype);
    } else {
      if (Object.isFrozen(v)) continue;
      const o = v as Record<string, unknown>;
      for (const key of Object.keys(o)) {
        const val = o[key];
        if (links !== null && typeof val === 'bigint') o[key] = link(links, val);
        else stack.push(val);
      }
    }
    Object.freeze(v);
  }
  return root;
}

function link(links: readonly unknown[], ref: bigint): unknown {
  const n = Number(ref);
  if (n >= links.length) throw new Error(`snapshot piece refers to node ${n} before it arrived`);
  return links[n];
}

/**
 * Puts linked nodes in place of their BigInts: values in place (same key, same position); a linked
 * key needs the entries rebuilt in order. What was not linked goes on `stack` to be walked.
 */
function relinkMap(m: Map<unknown, unknown>, links: readonly unknown[], stack: unknown[]): void {
  let keyLinked = false;
  for (const [k, val] of m) {
    if (typeof k === 'bigint') keyLinked = true;
    else stack.push(k);
    if (typeof val === 'bigint') Map.prototype.set.call(m, k, link(links, val));
    else stack.push(val);
  }
  if (!keyLinked) return;
  const entries = [...m].map(([k, val]) => [typeof k === 'bigint' ? link(links, k) : k, val] as const);
  Map.prototype.clear.call(m);
  for (const [k, val] of entries) Map.prototype.set.call(m, k, val);
}

function relinkSet(s: Set<unknown>, links: readonly unknown[], stack: unknown[]): void {
  let linked = false;
  for (const v of s) {
    if (typeof v === 'bigint') linked = true;
    else stack.push(v);
  }
  if (!linked) return;
  const values = [...s].map((v) => (typeof v === 'bigint' ? link(links, v) : v));
  Set.prototype.clear.call(s);
  for (const v of values) Set.prototype.add.call(s, v);
}
