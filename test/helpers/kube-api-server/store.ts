// Objects, resource versions and the event history of the test API server. One counter numbers
// every write, as etcd's revision does; a watch from resourceVersion R replays the history after R
// and then follows live writes. History is bounded (and can be dropped on purpose, compact()), so a
// watch or a continue token from before what is kept gets 410 Gone, as after an etcd compaction.

import { randomUUID } from 'node:crypto';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; uid?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export interface StoredEvent {
  readonly rv: number;
  /** `group/resource`. */
  readonly type: string;
  readonly event: EventType;
  readonly object: KubeObject;
}

type Listener = (e: StoredEvent) => void;

/** How many writes the history keeps: older resource versions are "too old" (410). */
const HISTORY = 10_000;

export class Store {
  private rv = 1;
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private history: StoredEvent[] = [];
  /** Writes at or below this resource version are no longer in the history. */
  private compactedTo = 0;
  private readonly listeners = new Set<Listener>();
  /** Per type, its objects in key order; dropped on each write of the type (a paged list of 10,000 sorts once). */
  private readonly sorted = new Map<string, KubeObject[]>();

  get resourceVersion(): number {
    return this.rv;
  }

  /** True when a watch or continue from `rv` can no longer be served. */
  tooOld(rv: number): boolean {
    return rv < this.compactedTo;
  }

  /** Drops the whole history: every watch or continue from before now gets 410 Gone. */
  compact(): void {
    this.history = [];
    this.compactedTo = this.rv;
  }

  list(type: string, namespace: string | null): KubeObject[] {
    let all = this.sorted.get(type);
    if (all === undefined) {
      const entries = [...(this.objects.get(type) ?? new Map<string, KubeObject>())].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      all = entries.map((e) => e[1]);
      this.sorted.set(type, all);
    }
    return namespace === null ? all : all.filter((o) => o.metadata.namespace === namespace);
  }

  get(type: string, namespace: string | null, name: string): KubeObject | undefined {
    return this.objects.get(type)?.get(`${namespace ?? ''}/${name}`);
  }

  /** Events of `type` after `rv`, in order. */
  since(type: string, rv: number): StoredEvent[] {
    return this.history.filter((e) => e.rv > rv && e.type === type);
  }

  onEvent(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Stores `obj` (new or replacing), stamping uid, resourceVersion, creationTimestamp and generation. */
  put(type: string, obj: KubeObject): { object: KubeObject; created: boolean } {
    const objects = this.objects.get(type) ?? new Map<string, KubeObject>();
    this.objects.set(type, objects);
    const key = keyOf(obj);
    const old = objects.get(key);
    const rv = ++this.rv;
    const md = obj.metadata;
    const generation = old === undefined ? 1 : ((old.metadata['generation'] as number | undefined) ?? 1) + (JSON.stringify(old['spec']) === JSON.stringify(obj['spec']) ? 0 : 1);
    const stored: KubeObject = {
      ...obj,
      metadata: {
        ...md,
        uid: (old?.metadata.uid) ?? randomUUID(),
        resourceVersion: String(rv),
        creationTimestamp: (old?.metadata['creationTimestamp'] as string | undefined) ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        generation,
      },
    };
    objects.set(key, stored);
    this.record({ rv, type, event: old === undefined ? 'ADDED' : 'MODIFIED', object: stored });
    return { object: stored, created: old === undefined };
  }

  delete(type: string, namespace: string | null, name: string): KubeObject | undefined {
    const objects = this.objects.get(type);
    const key = `${namespace ?? ''}/${name}`;
    const old = objects?.get(key);
    if (old === undefined) return undefined;
    objects!.delete(key);
    const rv = ++this.rv;
    const gone = { ...old, metadata: { ...old.metadata, resourceVersion: String(rv) } };
    this.record({ rv, type, event: 'DELETED', object: gone });
    return gone;
  }

  private record(e: StoredEvent): void {
    this.sorted.delete(e.type);
    this.history.push(e);
    if (this.history.length > HISTORY) {
      const dropped = this.history.splice(0, this.history.length - HISTORY);
      this.compactedTo = dropped[dropped.length - 1]!.rv;
    }
    for (const l of this.listeners) l(e);
  }
}

function keyOf(o: KubeObject): string {
  return `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}
