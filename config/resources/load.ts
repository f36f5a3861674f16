// Files -> YAML documents -> normalised, validated, frozen Resources (+ every message found).
//
// Sync and pure apart from reading the files: sources/files.ts calls it on change, the CLI for
// `sluice validate`, sources/kubernetes/ on objects from the API server (loadObjects). A result with any error-level message must not be used: callers throw
// ConfigError (config/errors.ts) and a running proxy keeps its last good snapshot.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ConfigErrorCode } from '../errors';
import type { ConfigMessage } from '../compile/snapshot';
import { METADATA } from './common';
import { checkCertFiles } from './cert-files';
import { crossCheck } from './cross-checks';
import { DESTINATION_RULE_SPEC } from './destination-rule';
import { AUTHORIZATION_POLICY_SPEC } from './authorization-policy';
import { GATEWAY_SPEC } from './gateway';
import { Locator, Reporter, describe, isMapping, normaliseObject, type ObjectSchema } from './schema';
import { SERVICE_ENTRY_SPEC } from './service-entry';
import { apiVersionsOf, KINDS, type Kind, type Metadata, type Origin, type Resource, type Resources } from './types';
import { VIRTUAL_SERVICE_SPEC } from './virtual-service';

export interface LoadOptions {
  readonly defaultNamespace: string;
  /**
   * Check that the certificate, key and CA files TLS settings name exist and parse (cert-files.ts):
   * the running proxy (warnings) and `sluice validate` (errors) do; plain loads (tests, tools) don't.
   */
  readonly checkFiles?: boolean;
  /** A directory whose files only the proxy's own machine has (its workload certificates): not checked. */
  readonly uncheckedDir?: string;
}

export interface LoadResult {
  readonly resources: Resources;
  readonly messages: readonly ConfigMessage[];
  /** Every object of a kind sluice does not read (warned once per kind), so `validate` can list them all. */
  readonly ignored?: readonly IgnoredObject[];
}

export interface IgnoredObject {
  readonly origin: Origin;
  readonly kind: string;
  readonly apiVersion: string;
  readonly name: string;
}

export interface SourceFile {
  readonly file: string;
  readonly text: string;
}

const SPEC_SCHEMAS: Readonly<Record<Kind, ObjectSchema>> = {
  ServiceEntry: SERVICE_ENTRY_SPEC,
  Gateway: GATEWAY_SPEC,
  VirtualService: VIRTUAL_SERVICE_SPEC,
  DestinationRule: DESTINATION_RULE_SPEC,
  AuthorizationPolicy: AUTHORIZATION_POLICY_SPEC,
};

/**
 * Kinds sluice does not act on, met in real config directories and clusters, and why: each is
 * passed over with ONE warning per kind per load, never an error (a directory holding a
 * PeerAuthentication must still start). Keyed `group/Kind` (group = apiVersion before the `/`,
 * '' for core v1). To act on one of them later, give it a schema in SPEC_SCHEMAS and a Kind in
 * types.ts instead; kinds absent from both tables get the generic reason.
 */
const NOT_READ: ReadonlyMap<string, string> = new Map([
  ['security.istio.io/PeerAuthentication', 'sluice does not take its mTLS mode from PeerAuthentication'],
  ['security.istio.io/RequestAuthentication', 'sluice does not validate JWTs'],
  ['networking.istio.io/Sidecar', 'sluice does not scope a sidecar\'s config by Sidecar resources'],
  ['networking.istio.io/EnvoyFilter', 'sluice is not Envoy and has no filters to patch'],
  ['networking.istio.io/WorkloadEntry', 'sluice reads endpoints from ServiceEntry.spec.endpoints'],
  ['networking.istio.io/WorkloadGroup', 'sluice reads endpoints from ServiceEntry.spec.endpoints'],
  ['networking.istio.io/ProxyConfig', 'sluice takes its settings from flags'],
  ['telemetry.istio.io/Telemetry', 'sluice takes access-log and stats settings from flags'],
  // Same kind name as Istio's, other API: reading it as networking.istio.io Gateway would open ports nobody asked for.
  ['gateway.networking.k8s.io/Gateway', 'a Gateway API Gateway (gateway.networking.k8s.io) is not an Istio networking.istio.io Gateway'],
]);

/** The API group whose ServiceEntry/Gateway/VirtualService/DestinationRule sluice reads. */
const ISTIO_NETWORKING_GROUP = 'networking.istio.io';
/** AuthorizationPolicy's group. */
const SECURITY_GROUP = 'security.istio.io';

const CONFIG_EXTENSIONS = ['.yaml', '.yml', '.json'];
/** Top-level keys besides apiVersion/kind/metadata/spec that Kubernetes output carries. */
const IGNORED_TOP_LEVEL = new Set(['status']);
/** Guards against YAML alias bombs ("billion laughs"). */
const MAX_ALIAS_COUNT = 100;

export function loadPaths(paths: readonly string[], opts: LoadOptions): LoadResult {
  const read = readPaths(paths);
  const loaded = loadFiles(read.files, opts);
  return { resources: loaded.resources, messages: [...read.messages, ...loaded.messages], ignored: loaded.ignored };
}

export function loadText(text: string, file: string, opts: LoadOptions): LoadResult {
  return loadFiles([{ file, text }], opts);
}

/**
 * Reads files and directories (not recursive: *.yaml, *.yml, *.json sorted by name). Names that
 * start with `.` are skipped: editor droppings (`.#cnn.yaml`) and Kubernetes ConfigMap internals
 * (`..data`, `..2024_01_01...`). File-level problems are reported at document 0.
 */
export function readPaths(paths: readonly string[]): { files: SourceFile[]; messages: ConfigMessage[] } {
  const files: SourceFile[] = [];
  const messages: ConfigMessage[] = [];
  for (const p of paths) {
    const rep = new Reporter(messages, { file: p, doc: 0 }, null);
    let names: string[];
    try {
      if (!fs.statSync(p).isDirectory()) {
        files.push({ file: p, text: fs.readFileSync(p, 'utf8') });
        continue;
      }
      names = fs.readdirSync(p).filter((n) => !n.startsWith('.') && CONFIG_EXTENSIONS.includes(path.extname(n))).sort();
    } catch (err) {
      rep.error(ConfigErrorCode.READ, null, `cannot read: ${errorText(err)}`);
      continue;
    }
    let count = 0;
    for (const n of names) {
      const file = path.join(p, n);
      try {
        if (!fs.statSync(file).isFile()) continue;
        files.push({ file, text: fs.readFileSync(file, 'utf8') });
        count++;
      } catch (err) {
        new Reporter(messages, { file, doc: 0 }, null).error(ConfigErrorCode.READ, null, `cannot read: ${errorText(err)}`);
      }
    }
    if (count === 0) rep.warn(ConfigErrorCode.READ, null, `no ${CONFIG_EXTENSIONS.map((e) => '*' + e).join(', ')} files in this directory`);
  }
  return { files, messages };
}

function errorText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code !== undefined ? `${e.code}: ${e.message.replace(/^\w+: /, '')}` : String(e.message ?? err);
}

/** One object as an API server returns it (already parsed), with the origin its messages name. */
export interface SourceObject {
  readonly value: unknown;
  readonly origin: Origin;
}

/** What one load shares across its documents. */
interface LoadContext {
  readonly opts: LoadOptions;
  readonly loc: Locator;
  readonly out: Resource[];
  readonly messages: ConfigMessage[];
  /** `group/Kind` already warned about in this load (NOT_READ: one warning per kind). */
  readonly ignoredKinds: Set<string>;
  readonly ignored: IgnoredObject[];
}

function newContext(opts: LoadOptions): LoadContext {
  return { opts, loc: new Locator(), out: [], messages: [], ignoredKinds: new Set(), ignored: [] };
}

export function loadFiles(files: readonly SourceFile[], opts: LoadOptions): LoadResult {
  const ctx = newContext(opts);
  withPlainEnv(() => {
    for (const f of files) parseFile(f, ctx);
  });
  return finish(ctx);
}

/**
 * Objects already parsed (sources/kubernetes/): the same kind dispatch, validation and
 * cross-checks as files. `known`: resources made by the source itself (ServiceEntries from
 * Kubernetes Services), valid by construction: not validated, placed first, and part of the
 * cross-checks (a VirtualService may route to them).
 */
export function loadObjects(objects: readonly SourceObject[], opts: LoadOptions, known: readonly Resource[] = []): LoadResult {
  const ctx = newContext(opts);
  for (const o of objects) parseResource(o.value, o.origin, '', ctx);
  return finish(ctx, known);
}

function finish(ctx: LoadContext, known: readonly Resource[] = []): LoadResult {
  const { out: all, messages, loc } = ctx;

  const seen = new Map<string, Origin>();
  const unique: Resource[] = [...known];
  for (const r of all) {
    const key = `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`;
    const first = seen.get(key);
    if (first !== undefined) {
      new Reporter(messages, r.origin, `${r.kind}/${r.metadata.name}`).error(ConfigErrorCode.DUPLICATE, null,
        `duplicate ${r.kind} ${r.metadata.namespace}/${r.metadata.name}; first defined at ${first.file}:${first.doc}`);
      continue;
    }
    seen.set(key, r.origin);
    unique.push(r);
  }

  const resources: Resources = {
    serviceEntries: unique.filter((r) => r.kind === 'ServiceEntry') as Resources['serviceEntries'],
    gateways: unique.filter((r) => r.kind === 'Gateway') as Resources['gateways'],
    virtualServices: unique.filter((r) => r.kind === 'VirtualService') as Resources['virtualServices'],
    destinationRules: unique.filter((r) => r.kind === 'DestinationRule') as Resources['destinationRules'],
    authorizationPolicies: unique.filter((r) => r.kind === 'AuthorizationPolicy') as Resources['authorizationPolicies'],
  };
  crossCheck(resources, loc, messages);
  if (ctx.opts.checkFiles === true) checkCertFiles(resources, loc, messages, ctx.opts.uncheckedDir);
  return { resources: deepFreeze(resources), messages, ignored: ctx.ignored };
}

function parseFile(f: SourceFile, ctx: LoadContext): void {
  const messages = ctx.messages;
  const docs = parseAllDocuments(f.text);
  if (!Array.isArray(docs)) return; // empty stream
  docs.forEach((doc, i) => {
    const origin: Origin = { file: f.file, doc: i + 1 };
    const rep = new Reporter(messages, origin, null);
    if (doc.errors.length > 0) {
      for (const e of doc.errors) rep.error(ConfigErrorCode.PARSE, null, `YAML parse error: ${firstLine(e.message)}`);
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      rep.error(ConfigErrorCode.PARSE, null, `YAML parse error: ${firstLine((err as Error).message)}`);
      return;
    }
    if (value === null || value === undefined) return; // empty document: skipped, but it still counts for the index
    if (isMapping(value) && value.kind === 'List') {
      if (!Array.isArray(value.items)) {
        rep.error(ConfigErrorCode.INVALID_FIELD, 'items', `expected a list, got ${describe(value.items)}`);
        return;
      }
      value.items.forEach((item, k) => parseResource(item, origin, `items[${k}].`, ctx));
    } else {
      parseResource(value, origin, '', ctx);
    }
  });
}

/**
 * Runs `fn` with `process.env` replaced by a plain copy. The yaml parser reads
 * `process.env.LOG_TOKENS` once per token, and the real `process.env` is a native interceptor
 * (a getenv per read): that was 30-40 % of parsing 10,000 ServiceEntries. The parse is
 * synchronous, so no other code can observe the swap, and the real object is always restored.
 */
function withPlainEnv(fn: () => void): void {
  const env = process.env;
  process.env = { ...env };
  try {
    fn();
  } finally {
    process.env = env;
  }
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.replace(/:$/, '');
}

function parseResource(raw: unknown, origin: Origin, prefix: string, ctx: LoadContext): void {
  const { opts, loc, out, messages } = ctx;
  const docRep = new Reporter(messages, origin, null);
  if (!isMapping(raw)) {
    docRep.error(ConfigErrorCode.INVALID_FIELD, prefix === '' ? null : prefix.slice(0, -1), `expected a resource (a mapping), got ${describe(raw)}`);
    return;
  }
  const kind = raw.kind;
  if (kind === undefined || kind === null) {
    docRep.error(ConfigErrorCode.REQUIRED, prefix + 'kind', 'missing required field');
    return;
  }
  if (typeof kind !== 'string') {
    docRep.error(ConfigErrorCode.UNKNOWN_KIND, prefix + 'kind', `expected a kind name (a string), got ${describe(kind)}`);
    return;
  }
  const rawName = isMapping(raw.metadata) && typeof raw.metadata.name === 'string' ? raw.metadata.name : '?';
  if (!readsKind(raw.apiVersion, kind)) {
    ignoreKind(raw.apiVersion, kind, rawName, origin, prefix, ctx);
    return;
  }
  const rep = new Reporter(messages, origin, `${kind}/${rawName}`);

  const apiVersion = raw.apiVersion;
  if (apiVersion === undefined || apiVersion === null) rep.error(ConfigErrorCode.REQUIRED, prefix + 'apiVersion', 'missing required field');
  else if (typeof apiVersion !== 'string' || !apiVersionsOf(kind as Kind).includes(apiVersion)) {
    rep.error(ConfigErrorCode.API_VERSION, prefix + 'apiVersion', `unsupported apiVersion ${describe(apiVersion)}; expected one of ${apiVersionsOf(kind as Kind).join(', ')}`);
  }
  for (const key of Object.keys(raw)) {
    if (!['apiVersion', 'kind', 'metadata', 'spec'].includes(key) && !IGNORED_TOP_LEVEL.has(key)) {
      // The Kubernetes API server rejects an unknown top-level field of an Istio object; sluice can
      // ignore it, so a running proxy only warns and `validate` fails it (ISTIO_REJECTS).
      rep.warn(ConfigErrorCode.ISTIO_REJECTS, prefix === '' ? null : prefix.slice(0, -1), `unknown field "${key}" (Istio rejects unknown top-level fields)`);
    }
  }
  const metadata = required(raw.metadata, prefix + 'metadata', rep) && normaliseObject(raw.metadata, METADATA, prefix + 'metadata', loc, rep);
  const spec = required(raw.spec, prefix + 'spec', rep) && normaliseObject(raw.spec, SPEC_SCHEMAS[kind as Kind], prefix + 'spec', loc, rep);
  if (!metadata || !spec || typeof metadata.name !== 'string') return;

  const md = { ...metadata, namespace: (metadata.namespace as string | undefined) ?? opts.defaultNamespace } as unknown as Metadata;
  const { name, namespace, ...rest } = md;
  out.push({ kind, apiVersion: apiVersion as string, metadata: { name, namespace, ...rest }, spec, origin } as Resource);
}

function apiGroup(apiVersion: unknown): string | null {
  if (typeof apiVersion !== 'string') return null;
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

/**
 * The four Istio kinds are read (and then validated, apiVersion included) unless the group says
 * the object is another API's kind of the same name (a Gateway API Gateway). A missing or
 * misspelt Istio apiVersion is still read, so it is reported as an error, not skipped.
 */
function readsKind(apiVersion: unknown, kind: string): boolean {
  if (!(KINDS as readonly string[]).includes(kind)) return false;
  const group = apiGroup(apiVersion);
  if (kind === 'AuthorizationPolicy') return group === null || group === SECURITY_GROUP || !NOT_READ.has(`${group}/${kind}`);
  return group === null || group === ISTIO_NETWORKING_GROUP || !NOT_READ.has(`${group}/${kind}`);
}

function ignoreKind(apiVersion: unknown, kind: string, name: string, origin: Origin, prefix: string, ctx: LoadContext): void {
  const group = apiGroup(apiVersion) ?? '';
  const key = `${group}/${kind}`;
  ctx.ignored.push({ origin, kind, apiVersion: typeof apiVersion === 'string' ? apiVersion : '', name });
  if (ctx.ignoredKinds.has(key)) return;
  ctx.ignoredKinds.add(key);
  const reason = NOT_READ.get(key) ?? `sluice reads ${KINDS.filter((k) => k !== 'AuthorizationPolicy').join(', ')} of ${ISTIO_NETWORKING_GROUP} and AuthorizationPolicy of ${SECURITY_GROUP} (or a List of them)`;
  const what = typeof apiVersion === 'string' ? `${kind} (${apiVersion})` : kind;
  new Reporter(ctx.messages, origin, `${kind}/${name}`).warn(ConfigErrorCode.IGNORED_KIND, prefix === '' ? null : prefix.slice(0, -1),
    `${what} ignored: ${reason} (one warning per kind: further ${kind} objects are ignored silently)`);
}

function required(value: unknown, path: string, rep: Reporter): boolean {
  if (value !== undefined && value !== null) return true;
  rep.error(ConfigErrorCode.REQUIRED, path, 'missing required field');
  return false;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
