// A Kubernetes API server for tests: the wire protocol of the real one, for the requests kubectl
// and sluice's Kubernetes config source make (README.md next to this file says what is and is not
// covered). Real HTTP or HTTPS on loopback; objects in memory (store.ts).
//
// Served: /version, discovery (/api, /apis, /apis/GROUP, /api/v1, /apis/GROUP/VERSION); per
// resource: list (resourceVersion, limit/continue), watch (chunked JSON lines: ADDED, MODIFIED,
// DELETED, BOOKMARK with allowWatchBookmarks, ERROR with a 410 Status for a too-old
// resourceVersion; timeoutSeconds), get, create (POST), update (PUT), patch (merge, strategic,
// server-side apply), delete. Errors are Status objects with the real reasons (NotFound, Forbidden,
// Unauthorized, AlreadyExists, Conflict, Expired, BadRequest...).
//
// Test knobs: forbid() a resource (403), a bearer token to require (401 without it), compact() the
// history (410 for older watches and continue tokens), dropWatches() (connections cut mid-stream),
// bookmark(), injectEvent() (a raw event line into open watches), failNext() (500s), and the
// log of requests.

import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { mergePatch, strategicMergePatch } from './patch';
import { apiGroup, apiGroupList, apiResourceList, defaultResourceTypes, groupVersion, type ResourceType } from './resources';
import { Store, type KubeObject, type StoredEvent } from './store';

export interface KubeApiServerOptions {
  /** Served resource types (default: core, discovery, apps, Istio networking v1/v1beta1/v1alpha3, Istio security). */
  readonly types?: readonly ResourceType[];
  /** HTTPS with this key and certificate; with `ca`, client certificates are asked for and checked. */
  readonly tls?: { readonly key: string | Buffer; readonly cert: string | Buffer; readonly ca?: string | Buffer };
  /** Requests must carry `Authorization: Bearer TOKEN` (or a client certificate, with tls.ca). */
  readonly token?: string;
}

interface Target {
  readonly type: ResourceType;
  readonly namespace: string | null;
  readonly name: string | null;
}

interface OpenWatch {
  readonly res: http.ServerResponse;
  readonly type: ResourceType;
  readonly namespace: string | null;
  readonly bookmarks: boolean;
}

export class KubeApiServer {
  readonly store = new Store();
  readonly types: readonly ResourceType[];
  /** `METHOD URL` of every request, in order. */
  readonly requests: string[] = [];
  private readonly server: http.Server;
  private readonly secure: boolean;
  private readonly token: string | undefined;
  private readonly forbidden = new Set<string>();
  private readonly watches = new Set<OpenWatch>();
  private failures = 0;

  constructor(opts: KubeApiServerOptions = {}) {
    this.types = opts.types ?? defaultResourceTypes();
    this.token = opts.token;
    this.secure = opts.tls !== undefined;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      this.handle(req, res).catch((e: Error) => this.status(res, 500, 'InternalError', e.message));
    };
    this.server = opts.tls === undefined
      ? http.createServer(handler)
      : https.createServer({ key: opts.tls.key, cert: opts.tls.cert, ...(opts.tls.ca !== undefined ? { ca: opts.tls.ca, requestCert: true, rejectUnauthorized: false } : {}) }, handler);
    this.store.onEvent((e) => this.fanOut(e));
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return this.url;
  }

  get url(): string {
    return `${this.secure ? 'https' : 'http'}://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.dropWatches();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** Answer 403 Forbidden for every request on this resource (plural name, e.g. `pods`). */
  forbid(resource: string): void {
    this.forbidden.add(resource);
  }

  /** The next `n` resource requests fail with 500 InternalError. */
  failNext(n: number): void {
    this.failures = n;
  }

  /** Cuts every open watch connection mid-stream (no final chunk), as a restarting server or a proxy does. */
  dropWatches(): void {
    for (const w of this.watches) w.res.socket?.destroy();
    this.watches.clear();
  }

  /** How many watches are open now (tests wait for the client to re-establish them). */
  openWatches(resource?: string): number {
    return [...this.watches].filter((w) => resource === undefined || w.type.name === resource).length;
  }

  /** Sends a BOOKMARK with the current resourceVersion to every watch that allowed bookmarks. */
  bookmark(): void {
    for (const w of this.watches) {
      if (!w.bookmarks) continue;
      this.writeEvent(w, { type: 'BOOKMARK', object: { kind: w.type.kind, apiVersion: groupVersion(w.type), metadata: { resourceVersion: String(this.store.resourceVersion) } } });
    }
  }

  /** Writes `event` as it is into every open watch of `resource`: for events no real store would make. */
  injectEvent(resource: string, event: object): void {
    for (const w of this.watches) if (w.type.name === resource) this.writeEvent(w, event);
  }

  /** Stores an object as `kubectl apply` would create it (tests that need no kubectl). */
  put(obj: KubeObject): KubeObject {
    const [group, version] = splitApiVersion(obj.apiVersion ?? '');
    const type = this.types.find((t) => t.group === group && t.version === version && t.kind === obj.kind);
    if (type === undefined) throw new Error(`not served: ${obj.apiVersion} ${obj.kind}`);
    return this.store.put(typeKey(type), { ...obj, metadata: { ...obj.metadata, namespace: type.namespaced ? obj.metadata.namespace ?? 'default' : undefined } }).object;
  }

  remove(apiVersion: string, kind: string, namespace: string, name: string): void {
    const [group, version] = splitApiVersion(apiVersion);
    const type = this.types.find((t) => t.group === group && t.version === version && t.kind === kind);
    if (type !== undefined) this.store.delete(typeKey(type), namespace, name);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.requests.push(`${req.method} ${req.url}`);
    const url = new URL(req.url ?? '/', 'http://x');
    if (!this.authorized(req)) return this.status(res, 401, 'Unauthorized', 'Unauthorized');
    const segs = url.pathname.split('/').filter((s) => s !== '');
    const method = req.method ?? 'GET';
    if (url.pathname === '/version') return this.json(res, 200, { major: '1', minor: '32', gitVersion: 'v1.32.0-sluice-test', platform: 'linux/amd64' });
    if (url.pathname === '/api') return this.json(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: req.socket.localAddress + ':' + req.socket.localPort }] });
    if (url.pathname === '/apis') return this.json(res, 200, apiGroupList(this.types));
    if (segs[0] === 'apis' && segs.length === 2) {
      const versions = [...new Set(this.types.filter((t) => t.group === segs[1]).map((t) => t.version))];
      return versions.length === 0 ? this.notFound(res, url.pathname) : this.json(res, 200, apiGroup(segs[1]!, versions));
    }
    const gvLength = segs[0] === 'api' ? 2 : 3;
    if ((segs[0] === 'api' || segs[0] === 'apis') && segs.length === gvLength) {
      const list = apiResourceList(this.types, segs.slice(1).join('/'));
      return list === null ? this.notFound(res, url.pathname) : this.json(res, 200, list);
    }
    const target = segs[0] === 'api' || segs[0] === 'apis' ? this.target(segs.slice(0, gvLength), segs.slice(gvLength)) : null;
    if (target === null) return this.notFound(res, url.pathname);
    if (this.forbidden.has(target.type.name)) {
      const verb = method === 'GET' ? (target.name === null ? (isWatch(url) ? 'watch' : 'list') : 'get') : method.toLowerCase();
      return this.status(res, 403, 'Forbidden', `${target.type.name}${target.type.group === '' ? '' : '.' + target.type.group} is forbidden: User "system:serviceaccount:istio-system:sluice" cannot ${verb} resource "${target.type.name}" in API group "${target.type.group}"${target.namespace === null ? ' at the cluster scope' : ` in the namespace "${target.namespace}"`}`, { kind: target.type.name, group: target.type.group });
    }
    if (this.failures > 0) {
      this.failures--;
      return this.status(res, 500, 'InternalError', 'Internal error occurred: injected by the test');
    }
    const body = method === 'POST' || method === 'PUT' || method === 'PATCH' ? await readBody(req) : '';
    if (method === 'GET' && target.name === null) return isWatch(url) ? this.watch(res, target, url) : this.list(res, target, url);
    if (method === 'GET') return this.getOne(res, target);
    if (method === 'POST' && target.name === null) return this.create(res, target, body);
    if (method === 'PUT' && target.name !== null) return this.update(res, target, body);
    if (method === 'PATCH' && target.name !== null) return this.patch(res, target, body, req.headers['content-type'] ?? '');
    if (method === 'DELETE' && target.name !== null) return this.remove1(res, target);
    return this.status(res, 405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
  }

  private authorized(req: http.IncomingMessage): boolean {
    if (this.token === undefined) return true;
    if (req.headers.authorization === `Bearer ${this.token}`) return true;
    const sock = req.socket as import('node:tls').TLSSocket;
    return typeof sock.authorized === 'boolean' && sock.authorized && sock.getPeerCertificate().subject !== undefined;
  }

  /** `/api/v1` or `/apis/G/V` then `[namespaces/NS/]RESOURCE[/NAME]`. */
  private target(gvSegs: string[], rest: string[]): Target | null {
    const gv = gvSegs[0] === 'api' ? { group: '', version: gvSegs[1]! } : { group: gvSegs[1]!, version: gvSegs[2]! };
    let namespace: string | null = null;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1]!;
      rest = rest.slice(2);
    }
    if (rest.length < 1 || rest.length > 2) return null;
    const type = this.types.find((t) => t.group === gv.group && t.version === gv.version && t.name === rest[0]);
    if (type === undefined) return null;
    return { type, namespace: type.namespaced ? namespace : null, name: rest[1] ?? null };
  }

  private list(res: http.ServerResponse, t: Target, url: URL): void {
    const limit = Number(url.searchParams.get('limit') ?? '0');
    const cont = url.searchParams.get('continue');
    let rv = this.store.resourceVersion;
    let after = '';
    if (cont !== null && cont !== '') {
      let token: { rv: number; after: string };
      try {
        token = JSON.parse(Buffer.from(cont, 'base64url').toString()) as { rv: number; after: string };
      } catch {
        return this.status(res, 400, 'BadRequest', 'continue key is not valid: illegal base64 data');
      }
      if (this.store.tooOld(token.rv)) {
        return this.status(res, 410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.');
      }
      rv = token.rv;
      after = token.after;
    }
    const listed = this.store.list(typeKey(t.type), t.namespace);
    const from = after === '' ? 0 : firstAfter(listed, after);
    const all = from === 0 ? listed : listed.slice(from);
    const page = limit > 0 ? all.slice(0, limit) : all;
    const metadata: Record<string, unknown> = { resourceVersion: String(rv) };
    if (page.length < all.length) {
      const last = page[page.length - 1]!;
      metadata['continue'] = Buffer.from(JSON.stringify({ rv, after: `${last.metadata.namespace ?? ''}/${last.metadata.name}` })).toString('base64url');
      metadata['remainingItemCount'] = all.length - page.length;
    }
    // Lists of built-in kinds carry kind/apiVersion on the list only; custom resources on each item too.
    const builtIn = !t.type.group.includes('.') || t.type.group.endsWith('.k8s.io');
    this.json(res, 200, {
      kind: `${t.type.kind}List`, apiVersion: groupVersion(t.type), metadata,
      items: page.map((o) => builtIn ? withoutTypeMeta(o) : this.asServed(o, t.type)),
    });
  }

  private watch(res: http.ServerResponse, t: Target, url: URL): void {
    const rvParam = url.searchParams.get('resourceVersion') ?? '';
    const w: OpenWatch = { res, type: t.type, namespace: t.namespace, bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true' };
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    const rv = Number(rvParam);
    if (rvParam !== '' && rvParam !== '0' && (!Number.isInteger(rv) || this.store.tooOld(rv))) {
      // As the real server: the HTTP status is 200 and the 410 travels as an ERROR event.
      this.writeEvent(w, { type: 'ERROR', object: statusObject(410, 'Expired', `too old resource version: ${rvParam} (${this.store.resourceVersion})`) });
      res.end();
      return;
    }
    if (rvParam === '' || rvParam === '0') {
      for (const o of this.store.list(typeKey(t.type), t.namespace)) this.writeEvent(w, { type: 'ADDED', object: this.asServed(o, t.type) });
    } else {
      for (const e of this.store.since(typeKey(t.type), rv)) if (this.matches(w, e)) this.writeEvent(w, { type: e.event, object: this.asServed(e.object, t.type) });
    }
    this.watches.add(w);
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? '0');
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : null;
    res.on('close', () => {
      if (timer !== null) clearTimeout(timer);
      this.watches.delete(w);
    });
  }

  private fanOut(e: StoredEvent): void {
    for (const w of this.watches) if (this.matches(w, e)) this.writeEvent(w, { type: e.event, object: this.asServed(e.object, w.type) });
  }

  private matches(w: OpenWatch, e: StoredEvent): boolean {
    return e.type === typeKey(w.type) && (w.namespace === null || e.object.metadata.namespace === w.namespace);
  }

  private writeEvent(w: OpenWatch, event: object): void {
    if (!w.res.writableEnded && !w.res.destroyed) w.res.write(JSON.stringify(event) + '\n');
  }

  private getOne(res: http.ServerResponse, t: Target): void {
    const o = this.store.get(typeKey(t.type), t.namespace, t.name!);
    if (o === undefined) return this.notFoundObject(res, t);
    this.json(res, 200, this.asServed(o, t.type));
  }

  private create(res: http.ServerResponse, t: Target, body: string): void {
    const obj = this.parseObject(res, body, 'application/json');
    if (obj === null) return;
    if (this.store.get(typeKey(t.type), t.namespace, obj.metadata.name) !== undefined) {
      return this.status(res, 409, 'AlreadyExists', `${t.type.name}${groupSuffix(t.type)} "${obj.metadata.name}" already exists`, { name: obj.metadata.name, group: t.type.group, kind: t.type.name });
    }
    this.json(res, 201, this.asServed(this.store.put(typeKey(t.type), this.placed(obj, t)).object, t.type));
  }

  private update(res: http.ServerResponse, t: Target, body: string): void {
    const obj = this.parseObject(res, body, 'application/json');
    if (obj === null) return;
    const old = this.store.get(typeKey(t.type), t.namespace, t.name!);
    if (old === undefined) return this.notFoundObject(res, t);
    const rv = obj.metadata.resourceVersion;
    if (rv !== undefined && rv !== old.metadata.resourceVersion) {
      return this.status(res, 409, 'Conflict', `Operation cannot be fulfilled on ${t.type.name}${groupSuffix(t.type)} "${t.name}": the object has been modified; please apply your changes to the latest version and try again`, { name: t.name!, group: t.type.group, kind: t.type.name });
    }
    this.json(res, 200, this.asServed(this.store.put(typeKey(t.type), this.placed(obj, t)).object, t.type));
  }

  private patch(res: http.ServerResponse, t: Target, body: string, contentType: string): void {
    const ct = contentType.split(';')[0]!.trim();
    const kinds: Record<string, (a: never, b: never) => unknown> = {
      'application/merge-patch+json': mergePatch,
      'application/strategic-merge-patch+json': strategicMergePatch,
      // Server-side apply: the body is the desired object; fields it leaves out are kept here.
      'application/apply-patch+yaml': mergePatch,
    };
    const fn = kinds[ct];
    if (fn === undefined) return this.status(res, 415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${Object.keys(kinds).join(', ')}`);
    let patch: unknown;
    try {
      patch = ct.endsWith('yaml') ? parseYaml(body) : JSON.parse(body);
    } catch (e) {
      return this.status(res, 400, 'BadRequest', `error decoding patch: ${(e as Error).message}`);
    }
    const old = this.store.get(typeKey(t.type), t.namespace, t.name!);
    if (old === undefined && ct !== 'application/apply-patch+yaml') return this.notFoundObject(res, t);
    const merged = fn((old ?? {}) as never, patch as never) as KubeObject;
    const { object, created } = this.store.put(typeKey(t.type), this.placed({ ...merged, metadata: { ...merged.metadata, name: t.name! } }, t));
    this.json(res, created ? 201 : 200, this.asServed(object, t.type));
  }

  private remove1(res: http.ServerResponse, t: Target): void {
    const gone = this.store.delete(typeKey(t.type), t.namespace, t.name!);
    if (gone === undefined) return this.notFoundObject(res, t);
    this.json(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name: t.name, group: t.type.group, kind: t.type.name, uid: gone.metadata.uid } });
  }

  private parseObject(res: http.ServerResponse, body: string, _ct: string): KubeObject | null {
    let obj: unknown;
    try {
      obj = JSON.parse(body);
    } catch (e) {
      this.status(res, 400, 'BadRequest', `the object provided is unrecognized: ${(e as Error).message}`);
      return null;
    }
    const o = obj as KubeObject;
    if (typeof o !== 'object' || o === null || typeof o.metadata?.name !== 'string' || o.metadata.name === '') {
      this.status(res, 422, 'Invalid', 'metadata.name: Required value: name or generateName is required');
      return null;
    }
    return o;
  }

  private placed(obj: KubeObject, t: Target): KubeObject {
    return { ...obj, apiVersion: groupVersion(t.type), kind: t.type.kind, metadata: { ...obj.metadata, namespace: t.type.namespaced ? t.namespace ?? obj.metadata.namespace ?? 'default' : undefined } };
  }

  /** An object as this version of its type serves it (one stored object, served in every version of its group). */
  private asServed(o: KubeObject, type: ResourceType): KubeObject {
    return { ...o, apiVersion: groupVersion(type), kind: type.kind };
  }

  private notFoundObject(res: http.ServerResponse, t: Target): void {
    this.status(res, 404, 'NotFound', `${t.type.name}${groupSuffix(t.type)} "${t.name}" not found`, { name: t.name!, group: t.type.group, kind: t.type.name });
  }

  private notFound(res: http.ServerResponse, path: string): void {
    this.status(res, 404, 'NotFound', `the server could not find the requested resource (get ${path})`);
  }

  private status(res: http.ServerResponse, code: number, reason: string, message: string, details?: object): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    this.json(res, code, statusObject(code, reason, message, details));
  }

  private json(res: http.ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-cache, private' });
    res.end(text);
  }
}

function statusObject(code: number, reason: string, message: string, details?: object): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details !== undefined ? { details } : {}), code };
}

function typeKey(t: ResourceType): string {
  return `${t.group}/${t.name}`;
}

function groupSuffix(t: ResourceType): string {
  return t.group === '' ? '' : '.' + t.group;
}

function isWatch(url: URL): boolean {
  const w = url.searchParams.get('watch');
  return w === 'true' || w === '1';
}

function splitApiVersion(apiVersion: string): [string, string] {
  const i = apiVersion.indexOf('/');
  return i < 0 ? ['', apiVersion] : [apiVersion.slice(0, i), apiVersion.slice(i + 1)];
}

function withoutTypeMeta(o: KubeObject): KubeObject {
  const { apiVersion: _a, kind: _k, ...rest } = o;
  return rest as KubeObject;
}

/** Index of the first object whose `namespace/name` sorts after `key` (objects in key order). */
function firstAfter(objects: readonly KubeObject[], key: string): number {
  let lo = 0;
  let hi = objects.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const o = objects[mid]!;
    if (`${o.metadata.namespace ?? ''}/${o.metadata.name}` <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
