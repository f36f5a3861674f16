// Comparing two object graphs exactly, for the tests of snapshots that cross a thread: values, key
// order, Map/Set order, prototypes and freezing (sameShape), and which objects are shared (sameSharing).

/** Walks both graphs in step: anything but an identical shape is reported with its path. */
export function sameShape(a: unknown, b: unknown, at: string, out: string[]): void {
  if (out.length > 5) return;
  if (typeof a !== typeof b) return void out.push(`${at}: ${typeof a} vs ${typeof b}`);
  if (a === null || typeof a !== 'object') {
    if (!Object.is(a, b)) out.push(`${at}: ${String(a)} vs ${String(b)}`);
    return;
  }
  const o = b as object;
  if (o === null) return void out.push(`${at}: object vs null`);
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(o)) return void out.push(`${at}: prototypes differ`);
  if (Object.isFrozen(a) !== Object.isFrozen(o)) out.push(`${at}: frozen ${Object.isFrozen(a)} vs ${Object.isFrozen(o)}`);
  if (a instanceof RegExp) {
    if (a.source !== (o as RegExp).source || a.flags !== (o as RegExp).flags) out.push(`${at}: regex ${a} vs ${String(o)}`);
    return;
  }
  if (a instanceof Map || a instanceof Set) {
    const ea = [...a.entries()];
    const eb = [...(o as Map<unknown, unknown>).entries()];
    if (ea.length !== eb.length) return void out.push(`${at}: size ${ea.length} vs ${eb.length}`);
    ea.forEach((e, i) => sameShape(e, eb[i], `${at}{${i}}`, out));
    return;
  }
  const ka = Object.keys(a);
  const kb = Object.keys(o);
  if (ka.join(',') !== kb.join(',')) return void out.push(`${at}: keys ${ka.join(',')} vs ${kb.join(',')}`);
  for (const k of ka) sameShape((a as Record<string, unknown>)[k], (o as Record<string, unknown>)[k], `${at}.${k}`, out);
}

/**
 * The two graphs have the same sharing: a one-to-one map between their objects, position by
 * position. Returns how many objects there are and how many positions break the pairing.
 */
export function sameSharing(a: unknown, b: unknown): { objects: number; broken: number } {
  const ab = new Map<object, object>();
  const ba = new Map<object, object>();
  let broken = 0;
  const stack: [unknown, unknown][] = [[a, b]];
  while (stack.length > 0) {
    const [x, y] = stack.pop()!;
    if (x === null || typeof x !== 'object' || y === null || typeof y !== 'object') continue;
    if (ab.has(x) || ba.has(y)) {
      if (ab.get(x) !== y || ba.get(y) !== x) broken++;
      continue;
    }
    ab.set(x, y);
    ba.set(y, x);
    if (x instanceof Map || x instanceof Set) {
      const ex = [...x.entries()];
      const ey = [...(y as Map<unknown, unknown>).entries()];
      ex.forEach((e, i) => stack.push([e[0], ey[i]?.[0]], [e[1], ey[i]?.[1]]));
    } else if (!(x instanceof RegExp)) {
      for (const k of Object.keys(x)) stack.push([(x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k]]);
    }
  }
  return { objects: ab.size, broken };
}
