// List-then-watch of one collection into a local store, as client-go's Reflector: list in pages
// (limit/continue), remember the list's resourceVersion, watch from it with bookmarks
// (allowWatchBookmarks: the server tells us how far we are even when nothing we watch changes,
// so a reconnect does not start from a version the server has long compacted), and:
//   - a stream the server ends (timeoutSeconds) -> watch again from the last version seen;
//   - 410 Gone (an ERROR event or an HTTP 410: the version is compacted away) -> list again;
//   - any other failure (connection refused or cut, 5xx, 403) -> back off with jitter (a random
//     delay between half and all of min(max, base * 2^n)), so many proxies do not reconnect in step.
// The store holds objects after `transform` (which keeps only the fields used: memory stays
// bounded by what the config needs, not by what the API server sends).

import { KubeApiError, type KubeClient, type KubeObject, type WatchEvent } from './client';

export interface ReflectorOptions {
  readonly client: KubeClient;
  /** Collection path, e.g. `/api/v1/services` or `/apis/networking.istio.io/v1/namespaces/NS/virtualservices`. */
  readonly path: string;
  /** Filled into list items, which built-in kinds' lists leave without them. */
  readonly apiVersion: string;
  readonly kind: string;
  readonly transform?: (o: KubeObject) => KubeObject;
  /** False: the object is not of this collection (a foreign kind in the stream) and is not stored. */
  readonly accept?: (o: KubeObject) => boolean;
  /** After every change of the store (the first complete list included). */
  readonly onChange: () => void;
  /** A failure worth a log line (the reflector itself carries on). */
  readonly onError: (e: KubeApiError, retryInMs: number) => void;
  readonly timing?: Partial<ReflectorTiming>;
}

export interface ReflectorTiming {
  /** Items per list page. */
  readonly pageSize: number;
  /** Asked of the server per watch; each watch gets a random value in [t, 2t) as client-go does. */
  readonly watchTimeoutSeconds: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
}

export const DEFAULT_TIMING: ReflectorTiming = { pageSize: 500, watchTimeoutSeconds: 300, backoffBaseMs: 800, backoffMaxMs: 30_000 };

export class Reflector {
  /** `namespace/name` -> object. */
  readonly store = new Map<string, KubeObject>();
  private readonly o: ReflectorOptions;
  private readonly timing: ReflectorTiming;
  private resourceVersion = '';
  private failures = 0;
  private stopped = false;
  private watch: { close(): void } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  private syncedResolve!: () => void;
  /** Resolves when the first complete list is in the store. */
  readonly synced = new Promise<void>((r) => (this.syncedResolve = r));
  /** True once a list completed. */
  hasSynced = false;

  constructor(o: ReflectorOptions) {
    this.o = o;
    this.timing = { ...DEFAULT_TIMING, ...o.timing };
  }

  start(): void {
    void this.run();
  }

  stop(): void {
    this.stopped = true;
    this.watch?.close();
    if (this.timer !== null) clearTimeout(this.timer);
    this.wake?.();
  }

  private async run(): Promise<void> {
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList) {
          await this.list();
          needList = false;
        }
        await this.watchOnce();
        // The server ended the stream (its timeout): go on from where we are, at once.
      } catch (e) {
        if (this.stopped) return;
        const err = e instanceof KubeApiError ? e : new KubeApiError(0, 'Error', (e as Error).message);
        if (err.status === 410) {
          // Compacted away: only a new list can tell us the state. Not a failure of the server.
          needList = true;
          this.resourceVersion = '';
          continue;
        }
        const delay = this.backoff();
        this.o.onError(err, delay);
        await this.sleep(delay);
      }
    }
  }

  private async list(): Promise<void> {
    const items = new Map<string, KubeObject>();
    let cont = '';
    let rv = '';
    do {
      const q = new URLSearchParams({ limit: String(this.timing.pageSize) });
      if (cont !== '') q.set('continue', cont);
      const page = await this.o.client.get(`${this.o.path}?${q}`) as { metadata?: { resourceVersion?: string; continue?: string }; items?: KubeObject[] };
      if (this.stopped) return;
      for (const raw of page.items ?? []) {
        const o = this.prepare({ apiVersion: this.o.apiVersion, kind: this.o.kind, ...raw });
        if (o !== null) items.set(keyOf(o), o);
      }
      rv = page.metadata?.resourceVersion ?? '';
      cont = page.metadata?.continue ?? '';
    } while (cont !== '');
    this.store.clear();
    for (const [k, v] of items) this.store.set(k, v);
    this.resourceVersion = rv;
    this.failures = 0;
    this.hasSynced = true;
    this.syncedResolve();
    this.o.onChange();
  }

  private async watchOnce(): Promise<void> {
    const t = this.timing.watchTimeoutSeconds;
    const timeout = Math.floor(t + Math.random() * t);
    const q = new URLSearchParams({ watch: 'true', allowWatchBookmarks: 'true', resourceVersion: this.resourceVersion, timeoutSeconds: String(timeout) });
    let failure: KubeApiError | null = null;
    const w = this.o.client.watch(`${this.o.path}?${q}`, (e) => {
      if (failure === null) failure = this.onEvent(e);
      if (failure !== null) w.close();
    }, (timeout + 30) * 1000);
    this.watch = w;
    try {
      await w.done;
    } catch (e) {
      if (failure === null) throw e;
    } finally {
      this.watch = null;
    }
    if (failure !== null) throw failure;
  }

  /** Applies one event; an ERROR event is returned as the error that ends this watch. */
  private onEvent(e: WatchEvent): KubeApiError | null {
    const obj = e.object ?? {};
    if (e.type === 'ERROR') {
      const s = obj as { code?: number; reason?: string; message?: string };
      return new KubeApiError(s.code ?? 0, s.reason ?? 'Error', s.message ?? 'watch ERROR event');
    }
    const rv = obj.metadata?.resourceVersion;
    if (rv !== undefined && rv !== '') this.resourceVersion = rv;
    this.failures = 0;
    if (e.type === 'BOOKMARK') return null;
    if (typeof obj.metadata?.name !== 'string') return null;
    const o = this.prepare({ apiVersion: this.o.apiVersion, kind: this.o.kind, ...obj });
    if (o === null) return null;
    if (e.type === 'DELETED') this.store.delete(keyOf(o));
    else if (e.type === 'ADDED' || e.type === 'MODIFIED') this.store.set(keyOf(o), o);
    else return null;
    this.o.onChange();
    return null;
  }

  private prepare(o: KubeObject): KubeObject | null {
    if (this.o.accept !== undefined && !this.o.accept(o)) return null;
    return this.o.transform === undefined ? o : this.o.transform(o);
  }

  private backoff(): number {
    const ceiling = Math.min(this.timing.backoffMaxMs, this.timing.backoffBaseMs * 2 ** this.failures);
    this.failures = Math.min(this.failures + 1, 30);
    return Math.round(ceiling / 2 + Math.random() * ceiling / 2);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, ms);
    });
  }
}

export function keyOf(o: KubeObject): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}
