// A compiled snapshot crossing from the config thread to the proxy's thread in pieces.
//
// One structured clone of a 10,000-service snapshot (~67 MB, ~1.2 M objects) is deserialized in a
// single synchronous call on the receiving thread: 0.5-1.2 s during which no connection is served.
// A clone cannot be received in parts, so the worker cuts the graph into NODES (subtrees) and sends
// them in PIECES (a few hundred KB each); the receiver takes one piece at a time, between turns of
// its event loop, and links the nodes back together. Nothing is visible until the last piece
// arrives (the root is the last node), so the result is applied atomically or not at all.
//
// Exactness: the graph that arrives is the one a single clone would give — same values, key order,
// Map/Set order — and an object reachable along several paths (compile shares a few constants) is
// still ONE object: every shared object is a node of its own, sent once and linked wherever it is
// referenced. A link in transit is a BigInt (the node's index) in place of the object; a snapshot
// never holds BigInts itself (YAML numbers are plain numbers), and if one ever did, or the graph
// has a cycle, or a hole in an array, the graph goes as one piece, exactly as before (`raw`).

import type { MessagePort } from 'node:worker_threads';
import { receiveMessageOnPort } from 'node:worker_threads';
import { refreeze } from '../compile/freeze';

/** Approximate serialized bytes per piece: at ~60-130 KB/ms of deserialization, a few ms each. */
export const PIECE_BYTES = 256 * 1024;
/** Receiving stops for a turn of the event loop once a turn has taken this long. */
export const SLICE_MS = 8;

/** How the receiver treats a node: as it is, as a run of a container's entries, or as a container joined from such runs. */
export const enum NodeKind {
  Plain = 0,
  /** An array of a container's entries (Map, object: key, value, key, value...), linked and refrozen, kept for its join. */
  Segment = 1,
  /** An array of segment links: one Array / Map / Set / plain object holding their entries in order. */
  JoinArray = 2,
  JoinMap = 3,
  JoinSet = 4,
  JoinObject = 5,
}

/** One message: nodes in id order, with how to treat each. */
export interface Piece {
  readonly nodes: unknown[];
  readonly kinds: NodeKind[];
}

export interface SplitGraph {
  /** True: one piece holding the whole graph as one node, no links (a shape splitting cannot keep exact). */
  readonly raw: boolean;
  /** Node ids count up across pieces; the last node is the root. */
  readonly pieces: Piece[];
}

class Unsplittable extends Error {}

const VISITING = 1;

/** A node to send: an object of the graph (Plain), a run of a container's children, or a join. */
interface NodeSpec {
  readonly kind: NodeKind;
  /** Plain: the object; Segment: the container; Join: the container. */
  readonly v: object;
  /** Segment: its children [from, to) in childrenOf order; Join: first and last segment ids. */
  readonly from: number;
  readonly to: number;
  readonly weight: number;
}

/** Cut `root` into pieces of about `pieceBytes` each. Pure: the graph is read, never changed. */
export function splitGraph(root: unknown, pieceBytes = PIECE_BYTES): SplitGraph {
  try {
    return new Splitter(pieceBytes).split(root);
  } catch (e) {
    // A cycle, a BigInt, a hole, or more objects than a Set holds: not splittable exactly.
    if (e instanceof Unsplittable || e instanceof RangeError) return { raw: true, pieces: [{ nodes: [root], kinds: [NodeKind.Plain] }] };
    throw e;
  }
}

/**
 * Three walks of the graph. count(): which objects are reached more than once (each becomes a node
 * of its own, so it is sent once). plan(), post-order: the bytes each object carries inline; a
 * container whose children add up to more than a piece becomes a Join of Segments (runs of its
 * children, each at most about a piece); every object on a path from a node down to a link is
 * marked for copying. payload(): what each node sends — the objects themselves where nothing links
 * out, copies with BigInt links where something does.
 */
class Splitter {
  private readonly budget: number;
  private readonly seen = new Set<object>();
  /** Reached more than once; after plan(), the node id (or VISITING while planned). */
  private readonly shared = new Map<object, number>();
  /** Containers that become a node on their own (shared or joined): id of their node. */
  private readonly nodeOf = new Map<object, number>();
  /** Objects whose inline subtree holds a link: sent as copies. */
  private readonly copied = new Set<object>();
  private readonly nodes: NodeSpec[] = [];
  /** Child weights of the containers being planned, as a stack (no array per object). */
  private weights = new Float64Array(1024);
  private top = 0;
  /** Set by plan(): whether what it just planned carries a link inline (the caller must be copied). */
  private linked = false;
  private lastChildren: { readonly of: object; readonly children: readonly unknown[] } | null = null;

  constructor(budget: number) {
    this.budget = Math.max(1, budget);
  }

  split(root: unknown): SplitGraph {
    if (!isContainer(root)) return { raw: true, pieces: [{ nodes: [root], kinds: [NodeKind.Plain] }] };
    this.count(root, 0);
    this.seen.clear();
    const w = this.plan(root, 0);
    if (!this.nodeOf.has(root)) this.addNode({ kind: NodeKind.Plain, v: root, from: 0, to: 0, weight: w });
    const pieces: Piece[] = [];
    let piece: Piece = { nodes: [], kinds: [] };
    let bytes = 0;
    for (let id = 0; id < this.nodes.length; id++) {
      const n = this.nodes[id]!;
      if (bytes > 0 && bytes + n.weight > this.budget) {
        pieces.push(piece);
        piece = { nodes: [], kinds: [] };
        bytes = 0;
      }
      piece.nodes.push(this.payload(n));
      piece.kinds.push(n.kind);
      bytes += n.weight;
    }
    if (piece.nodes.length > 0) pieces.push(piece);
    return { raw: false, pieces };
  }

  private count(v: unknown, depth: number): void {
    if (typeof v === 'bigint') throw new Unsplittable();
    if (!isContainer(v)) return;
    if (this.seen.has(v)) {
      this.shared.set(v, 0);
      return;
    }
    if (depth > 2000) throw new Unsplittable();
    this.seen.add(v);
    const d = depth + 1;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        if (!(i in v)) throw new Unsplittable();
        this.count(v[i], d);
      }
    } else if (v instanceof Map) {
      for (const [k, x] of v) {
        this.count(k, d);
        this.count(x, d);
      }
    } else if (v instanceof Set) {
      for (const x of v) this.count(x, d);
    } else {
      const o = v as Record<string, unknown>;
      for (const k of Object.keys(o)) this.count(o[k], d);
    }
  }

  /** The bytes `v` adds to its holder inline; sets `linked` when that includes a link. */
  private plan(v: unknown, depth: number): number {
    if (!isContainer(v)) {
      this.linked = false;
      return leafWeight(v);
    }
    const sharedState = this.shared.get(v);
    if (sharedState !== undefined) {
      if (sharedState === VISITING) throw new Unsplittable(); // a cycle
      if (this.nodeOf.has(v)) {
        this.linked = true;
        return LINK_BYTES;
      }
      this.shared.set(v, VISITING);
    }
    const base = this.top;
    let total = ownWeight(v);
    let anyLinked = false;
    const d = depth + 1;
    if (d > 2000) throw new Unsplittable();
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const w = this.plan(v[i], d);
        anyLinked ||= this.linked;
        this.push(w);
        total += w;
      }
    } else if (v instanceof Map) {
      for (const [k, x] of v) {
        let w = this.plan(k, d);
        anyLinked ||= this.linked;
        this.push(w);
        total += w;
        w = this.plan(x, d);
        anyLinked ||= this.linked;
        this.push(w);
        total += w;
      }
    } else if (v instanceof Set) {
      for (const x of v) {
        const w = this.plan(x, d);
        anyLinked ||= this.linked;
        this.push(w);
        total += w;
      }
    } else {
      const o = v as Record<string, unknown>;
      for (const k of Object.keys(o)) {
        this.push(k.length + 2);
        const w = this.plan(o[k], d);
        anyLinked ||= this.linked;
        this.push(w);
        total += k.length + 2 + w;
      }
    }
    const count = this.top - base;
    if (total > this.budget && count > 1) {
      this.join(v, base, count);
      this.top = base;
      if (sharedState !== undefined) this.shared.set(v, 0);
      this.linked = true;
      return LINK_BYTES;
    }
    this.top = base;
    if (anyLinked) this.copied.add(v);
    if (sharedState !== undefined) {
      this.shared.set(v, 0);
      this.nodeOf.set(v, this.addNode({ kind: NodeKind.Plain, v, from: 0, to: 0, weight: total }));
      this.linked = true;
      return LINK_BYTES;
    }
    this.linked = anyLinked;
    return total;
  }

  /** `v` goes as runs of its children (each about a piece at most) joined by one node. */
  private join(v: object, base: number, count: number): void {
    const first = this.nodes.length;
    // A Map's or object's children alternate key, value: a run starts only at a key.
    const step = Array.isArray(v) || v instanceof Set ? 1 : 2;
    let from = 0;
    let w = 0;
    for (let i = 0; i < count; i++) {
      const cw = this.weights[base + i]!;
      if (w > 0 && w + cw > this.budget && i % step === 0) {
        this.addNode({ kind: NodeKind.Segment, v, from, to: i, weight: w });
        from = i;
        w = 0;
      }
      w += cw;
    }
    this.addNode({ kind: NodeKind.Segment, v, from, to: count, weight: w });
    const last = this.nodes.length - 1;
    const kind = Array.isArray(v) ? NodeKind.JoinArray : v instanceof Map ? NodeKind.JoinMap : v instanceof Set ? NodeKind.JoinSet : NodeKind.JoinObject;
    this.nodeOf.set(v, this.addNode({ kind, v, from: first, to: last, weight: LINK_BYTES * (last - first + 1) }));
  }

  private push(w: number): void {
    if (this.top === this.weights.length) {
      const grown = new Float64Array(this.weights.length * 2);
      grown.set(this.weights);
      this.weights = grown;
    }
    this.weights[this.top++] = w;
  }

  private addNode(n: NodeSpec): number {
    this.nodes.push(n);
    return this.nodes.length - 1;
  }

  private payload(n: NodeSpec): unknown {
    if (n.kind === NodeKind.Plain) return this.inline(n.v, true);
    if (n.kind === NodeKind.Segment) {
      const children = this.childrenOf(n.v);
      const out = new Array<unknown>(n.to - n.from);
      for (let i = n.from; i < n.to; i++) out[i - n.from] = this.inline(children[i], false);
      return out;
    }
    const links: bigint[] = [];
    for (let id = n.from; id <= n.to; id++) links.push(BigInt(id));
    return links;
  }

  /** A joined container's children in plan() order (cached: its segments are consecutive nodes). */
  private childrenOf(v: object): readonly unknown[] {
    if (this.lastChildren !== null && this.lastChildren.of === v) return this.lastChildren.children;
    let children: unknown[];
    if (Array.isArray(v)) children = v;
    else if (v instanceof Set) children = [...v];
    else if (v instanceof Map) {
      children = [];
      for (const [k, x] of v) children.push(k, x);
    } else {
      children = [];
      for (const k of Object.keys(v)) children.push(k, (v as Record<string, unknown>)[k]);
    }
    this.lastChildren = { of: v, children };
    return children;
  }

  private inline(v: unknown, isNodeRoot: boolean): unknown {
    if (!isContainer(v)) return v;
    if (!isNodeRoot) {
      const id = this.nodeOf.get(v);
      if (id !== undefined) return BigInt(id);
    }
    if (!this.copied.has(v)) return v;
    if (Array.isArray(v)) {
      const out = new Array<unknown>(v.length);
      for (let i = 0; i < v.length; i++) out[i] = this.inline(v[i], false);
      return out;
    }
    if (v instanceof Map) {
      const out = new Map<unknown, unknown>();
      for (const [k, x] of v) out.set(this.inline(k, false), this.inline(x, false));
      return out;
    }
    if (v instanceof Set) {
      const out = new Set<unknown>();
      for (const x of v) out.add(this.inline(x, false));
      return out;
    }
    // No prototype: an own `__proto__` key (YAML allows it) stays a key, as the clone keeps it.
    const out = Object.create(null) as Record<string, unknown>;
    for (const k of Object.keys(v)) out[k] = this.inline((v as Record<string, unknown>)[k], false);
    return out;
  }
}

/** Bytes a link costs its holder (a BigInt in the clone). */
const LINK_BYTES = 10;

/**
 * The objects a structured clone walks into and that splitting may cut: arrays, Maps, Sets and
 * plain (or class-instance) objects. RegExps, Dates, buffers, boxed primitives and errors are
 * cloned whole with their holder.
 */
function isContainer(v: unknown): v is object {
  if (v === null || typeof v !== 'object') return false;
  if (Array.isArray(v) || v instanceof Map || v instanceof Set) return true;
  return !(v instanceof RegExp || v instanceof Date || v instanceof Error || ArrayBuffer.isView(v) || v instanceof ArrayBuffer
    || v instanceof Number || v instanceof String || v instanceof Boolean);
}

/** Roughly what the serializer writes for the container itself (tag, length). */
function ownWeight(_v: object): number {
  return 4;
}

function leafWeight(v: unknown): number {
  if (typeof v === 'string') return v.length + 2;
  if (typeof v === 'number') return 9;
  if (v instanceof RegExp) return v.source.length + 4;
  if (ArrayBuffer.isView(v)) return v.byteLength + 4;
  return 1;
}

/**
 * The receiving side: nodes in id order, each linked to the nodes it refers to (received before
 * it: a node's children are always numbered first) and refrozen as compile() left it; a join
 * rebuilds its container from its segments' entries, in order.
 */
export class Assembler {
  private readonly raw: boolean;
  private readonly nodes: unknown[] = [];

  constructor(raw: boolean) {
    this.raw = raw;
  }

  add(piece: Piece): void {
    const links = this.raw ? null : this.nodes;
    for (let i = 0; i < piece.nodes.length; i++) {
      const kind = piece.kinds[i]!;
      const node = piece.nodes[i];
      this.nodes.push(kind === NodeKind.Plain || kind === NodeKind.Segment ? refreeze(node, links) : refreeze(this.join(kind, node as bigint[]), null));
    }
  }

  /** The root, once every piece was added. */
  get root(): unknown {
    return this.nodes[this.nodes.length - 1];
  }

  private join(kind: NodeKind, segmentIds: readonly bigint[]): object {
    const segments = segmentIds.map((id) => {
      if (Number(id) >= this.nodes.length) throw new Error(`snapshot piece refers to node ${id} before it arrived`);
      return this.nodes[Number(id)] as readonly unknown[];
    });
    if (kind === NodeKind.JoinArray) return ([] as unknown[]).concat(...segments);
    if (kind === NodeKind.JoinSet) {
      const out = new Set<unknown>();
      for (const seg of segments) for (const x of seg) out.add(x);
      return out;
    }
    if (kind === NodeKind.JoinMap) {
      const out = new Map<unknown, unknown>();
      for (const seg of segments) for (let i = 0; i < seg.length; i += 2) out.set(seg[i], seg[i + 1]);
      return out;
    }
    const out: Record<string, unknown> = {};
    for (const seg of segments) {
      for (let i = 0; i < seg.length; i += 2) {
        const k = seg[i] as string;
        // A plain assignment to `__proto__` would set the prototype; the clone makes it an own key.
        if (k === '__proto__') Object.defineProperty(out, k, { value: seg[i + 1], writable: true, enumerable: true, configurable: true });
        else out[k] = seg[i + 1];
      }
    }
    return out;
  }
}

/**
 * Takes `count` pieces from `port` (all already posted: the sender posts them before it announces
 * them) a few at a time, giving the event loop a turn every SLICE_MS. Rejects if a piece is
 * missing or `cancelled()` turns true (the source was closed).
 */
export function receivePieces(port: MessagePort, count: number, raw: boolean, cancelled: () => boolean, sliceMs = SLICE_MS): Promise<unknown> {
  const assembler = new Assembler(raw);
  let received = 0;
  return new Promise((resolve, reject) => {
    const turn = (): void => {
      try {
        if (cancelled()) throw new Error('config worker closed');
        const start = performance.now();
        do {
          const m = receiveMessageOnPort(port);
          if (m === undefined) throw new Error(`config worker: piece ${received + 1} of ${count} missing`);
          assembler.add(m.message as Piece);
          received++;
        } while (received < count && performance.now() - start < sliceMs);
      } catch (e) {
        port.close();
        reject(e as Error);
        return;
      }
      if (received < count) {
        setImmediate(turn);
        return;
      }
      port.close();
      resolve(assembler.root);
    };
    setImmediate(turn);
  });
}
