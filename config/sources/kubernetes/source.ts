// `--config kubernetes`: config from the API server, kept current by watches, fed to the same
// compile -> swap -> keep-last-good path as files (proxy/runtime.ts takes a LoadResult from either).
//
// Watched (reflector.ts each): the four Istio networking kinds in the version discovery.ts finds,
// core Services and discovery.k8s.io/v1 EndpointSlices (services.ts makes mesh services of them),
// and Pods once a DestinationRule has subsets (their labels are the endpoints' labels). With
// --watch-namespaces, one watch per namespace and kind; else cluster-wide.
//
// After changes (debounced as files are: 100 ms quiet, at most 1 s) the whole config is rebuilt
// from the stores. The Istio objects go through the file loader's checks (loadObjects); an object
// with an error is reported by its API path (namespace, name) and field, and left out, and the
// rest is used: one bad VirtualService in a cluster must not freeze everyone's config. An object
// of a foreign kind in a stream is dropped with one warning per kind (load.ts's kind table).

import type { CompileOptions } from '../../compile/index';
import type { ConfigMessage } from '../../compile/snapshot';
import { CompileWorker, OneAtATime, type CompiledConfig } from '../compile-worker';
import { loadObjects, type LoadOptions, type LoadResult, type SourceObject } from '../../resources/load';
import { KubeApiError, KubeClient, type KubeObject } from './client';
import { istioKinds, ISTIO_GROUP } from './discovery';
import type { ClusterAccess } from './kubeconfig';
import { Reflector, type ReflectorTiming } from './reflector';
import { MeshServices, slimEndpointSlice, slimPod, slimService } from './services';

/** The `--config` value that selects this source. */
export const KUBERNETES_CONFIG = 'kubernetes';

export interface SourceLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface KubernetesSourceOptions {
  readonly access: ClusterAccess;
  /** --watch-namespaces; null = all. */
  readonly namespaces: readonly string[] | null;
  readonly load: LoadOptions;
  readonly log: SourceLog;
  readonly onChange: (r: LoadResult) => void;
  readonly timing?: Partial<SourceTiming>;
}

export interface SourceTiming extends ReflectorTiming {
  readonly debounceMs: number;
  readonly maxDelayMs: number;
  /** How long the first load waits for every first list. */
  readonly syncTimeoutMs: number;
}

const DEFAULTS = { debounceMs: 100, maxDelayMs: 1000, syncTimeoutMs: 30_000 };

interface Collection {
  readonly reflectors: Reflector[];
  readonly kind: string;
  readonly apiVersion: string;
  /** Plural, as in the URL. */
  readonly resource: string;
}

export class KubernetesSource {
  private readonly o: KubernetesSourceOptions;
  private readonly client: KubeClient;
  private readonly timing: Partial<SourceTiming> & typeof DEFAULTS;
  private istio: Collection[] = [];
  private services: Collection | null = null;
  private slices: Collection | null = null;
  private pods: Collection | null = null;
  private readonly foreignKinds = new Set<string>();
  private readonly meshServices = new MeshServices();
  /** Counts changes of the Pods store (cached translations that use pod labels are redone when it moves). */
  private podsVersion = 0;
  private started = false;
  /** A store changed since the last build (before start(): delivered when it is called). */
  private dirty = false;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private firstEventAt = 0;
  private offThreadCompile: { readonly options: CompileOptions; readonly onCompiled: (c: CompiledConfig) => void; readonly worker: CompileWorker } | null = null;
  /** Off-thread: one compile at a time; changes meanwhile rebuild once more after it. */
  private readonly offThreadRebuilds = new OneAtATime(() => this.compileOffThread(), () => this.closed);
  /** Before the first load: a fatal answer (401, 403) ends the wait at once. */
  private failFirstLoad: ((e: Error) => void) | null = null;

  constructor(o: KubernetesSourceOptions) {
    this.o = o;
    this.client = new KubeClient(o.access);
    this.timing = { ...DEFAULTS, ...o.timing };
    this.onStoreChange = this.onStoreChange.bind(this);
    this.rebuild = this.rebuild.bind(this);
  }

  /** Discovery, the first list of everything, and the config built from it. */
  async load(): Promise<LoadResult> {
    const kinds = await istioKinds(this.client);
    if (kinds.length === 0) this.o.log.warn({ server: this.o.access.server.origin }, `the API server serves no ${ISTIO_GROUP} kinds (Istio's CRDs are not installed): only Services and EndpointSlices are read`);
    this.istio = kinds.map((k) => this.collection(`/apis/${ISTIO_GROUP}/${k.version}`, k.resource, `${ISTIO_GROUP}/${k.version}`, k.kind));
    this.services = this.collection('/api/v1', 'services', 'v1', 'Service', slimService);
    this.slices = this.collection('/apis/discovery.k8s.io/v1', 'endpointslices', 'discovery.k8s.io/v1', 'EndpointSlice', slimEndpointSlice);
    const all = [...this.istio, this.services, this.slices].flatMap((c) => c.reflectors);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.all(all.map((r) => r.synced)),
        new Promise<never>((_, reject) => {
          this.failFirstLoad = reject;
          timer = setTimeout(() => reject(new KubeApiError(0, 'Timeout', `no complete list from ${this.o.access.server.origin} in ${this.timing.syncTimeoutMs / 1000} s`)), this.timing.syncTimeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      this.failFirstLoad = null;
    }
    this.o.log.info({ server: this.o.access.server.origin, credentials: this.o.access.describe, istio: kinds.map((k) => `${k.kind} ${k.version}`), namespaces: this.o.namespaces ?? 'all' }, 'kubernetes config source synced');
    return this.build();
  }

  /**
   * Rebuilds are compiled on a worker thread from now on and reported to `onCompiled` instead of
   * `onChange` (as FileSource.offThread): at 10,000 Services a compile is seconds of CPU that
   * traffic on the proxy's event loop would otherwise wait for. The first load stays in-thread.
   */
  offThread(options: CompileOptions, onCompiled: (c: CompiledConfig) => void): void {
    this.offThreadCompile ??= { options, onCompiled, worker: new CompileWorker() };
  }

  /** From now on, changes are delivered to onChange. */
  start(): void {
    this.started = true;
    if (this.dirty) this.onStoreChange();
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    for (const c of [...this.istio, this.services, this.slices, this.pods]) for (const r of c?.reflectors ?? []) r.stop();
    this.client.close();
    this.offThreadCompile?.worker.close();
  }

  private collection(gvPath: string, resource: string, apiVersion: string, kind: string, transform?: (o: KubeObject) => KubeObject, onChange?: () => void): Collection {
    const paths = this.o.namespaces === null ? [`${gvPath}/${resource}`] : this.o.namespaces.map((ns) => `${gvPath}/namespaces/${encodeURIComponent(ns)}/${resource}`);
    const reflectors = paths.map((path) => new Reflector({
      client: this.client, path, apiVersion, kind,
      ...(transform !== undefined ? { transform } : {}),
      accept: (o) => this.accept(o, kind, path),
      onChange: onChange === undefined ? this.onStoreChange : () => {
        onChange();
        this.onStoreChange();
      },
      onError: (e, retryInMs) => {
        if (this.failFirstLoad !== null && (e.status === 401 || e.status === 403)) this.failFirstLoad(e);
        this.o.log.warn({ code: e.code, status: e.status, reason: e.reason, path, retryInMs }, `kubernetes: ${e.message}`);
      },
      timing: this.timing,
    }));
    for (const r of reflectors) r.start();
    return { reflectors, kind, apiVersion, resource };
  }

  /** Objects of another kind in a stream are not stored; the first of each kind is reported. */
  private accept(o: KubeObject, kind: string, path: string): boolean {
    if (o.kind === kind) return true;
    const id = `${o.apiVersion ?? ''}/${o.kind ?? ''}`;
    if (!this.foreignKinds.has(id)) {
      this.foreignKinds.add(id);
      const name = o.metadata?.name ?? '?';
      const loaded = loadObjects([{ value: o, origin: { file: `${path}/${name}`, doc: 1 } }], this.o.load);
      const ignored = loaded.messages.find((m) => m.code === 'CFG_WARN_IGNORED_KIND');
      this.o.log.warn({ code: 'CFG_WARN_IGNORED_KIND', path }, ignored?.text ?? `${path}/${name}:1: ${o.kind ?? '?'}/${name}: a ${o.kind ?? '?'} in the ${kind} watch is ignored (one warning per kind)`);
    }
    return false;
  }

  private onStoreChange(): void {
    this.dirty = true;
    if (!this.started || this.closed) return;
    const now = Date.now();
    if (this.timer === null) this.firstEventAt = now;
    else clearTimeout(this.timer);
    this.timer = setTimeout(this.rebuild, Math.min(this.timing.debounceMs, Math.max(0, this.firstEventAt + this.timing.maxDelayMs - now)));
  }

  private rebuild(): void {
    this.timer = null;
    if (this.closed) return;
    if (this.offThreadCompile === null) this.o.onChange(this.build());
    else this.offThreadRebuilds.request();
  }

  private async compileOffThread(): Promise<void> {
    const off = this.offThreadCompile!;
    const loaded = this.build();
    try {
      const reply = await off.worker.runLoaded(loaded, this.o.load, off.options);
      if (this.closed) return;
      if (reply.kind === 'built') off.onCompiled({ messages: reply.messages, snapshot: reply.snapshot, failure: null });
      else off.onCompiled({ messages: [], snapshot: null, failure: reply.kind === 'failed' ? reply.message : 'config worker: unexpected reply' });
    } catch (e) {
      if (!this.closed) off.onCompiled({ messages: [], snapshot: null, failure: (e as Error).message });
    }
  }

  /** The config now: mesh services from Services + EndpointSlices, then the Istio objects, bad ones left out. */
  private build(): LoadResult {
    this.dirty = false;
    const podLabels = new Map<string, Readonly<Record<string, string>>>();
    for (const r of this.pods?.reflectors ?? []) for (const [k, p] of r.store) podLabels.set(k, p.metadata?.labels ?? {});
    const services = this.meshServices.build({ services: storeValues(this.services), endpointSlices: storeValues(this.slices), podLabels }, this.podsVersion);
    let objects: SourceObject[] = [];
    for (const c of this.istio) {
      for (const r of c.reflectors) {
        // The object's API path names it in every message: `apis/networking.istio.io/v1/namespaces/NS/virtualservices/NAME:1: ...`.
        for (const o of r.store.values()) objects.push({ value: o, origin: { file: `apis/${c.apiVersion}/namespaces/${o.metadata?.namespace ?? ''}/${c.resource}/${o.metadata?.name ?? ''}`, doc: 1 } });
      }
    }
    objects.sort((a, b) => (a.origin.file < b.origin.file ? -1 : a.origin.file > b.origin.file ? 1 : 0));
    const skipped: ConfigMessage[] = [];
    for (;;) {
      const r = loadObjects(objects, this.o.load, services);
      const bad = new Set(r.messages.filter((m) => m.level === 'error').map((m) => m.text.slice(0, m.text.indexOf(':'))));
      const rest = objects.filter((o) => !bad.has(o.origin.file));
      if (bad.size === 0 || rest.length === objects.length) {
        this.maybeWatchPods(r);
        return { resources: r.resources, messages: [...skipped, ...r.messages] };
      }
      for (const m of r.messages) {
        if (m.level === 'error' && bad.has(m.text.slice(0, m.text.indexOf(':')))) skipped.push({ level: 'warning', code: m.code, text: `${m.text} (this object is skipped; the rest of the config is used)` });
      }
      objects = rest;
    }
  }

  /** Endpoint labels matter once a DestinationRule selects subsets: then (and from then on) Pods are watched. */
  private maybeWatchPods(r: LoadResult): void {
    if (this.pods !== null || this.closed) return;
    if (!r.resources.destinationRules.some((dr) => (dr.spec.subsets ?? []).length > 0)) return;
    this.o.log.info({}, 'a DestinationRule has subsets: watching Pods for endpoint labels');
    this.pods = this.collection('/api/v1', 'pods', 'v1', 'Pod', slimPod, () => this.podsVersion++);
  }
}

function storeValues(c: Collection | null): KubeObject[] {
  return (c?.reflectors ?? []).flatMap((r) => [...r.store.values()]);
}
