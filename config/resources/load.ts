// Files -> YAML documents -> normalised, validated, frozen Resources (+ every message found).
//
// Sync and pure apart from reading the files: sources/files.ts calls it on change, the CLI for
// `sluice validate`. A result with any error-level message must not be used: callers throw
// ConfigError (config/errors.ts) and a running proxy keeps its last good snapshot.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ConfigErrorCode } from '../errors';
import type { ConfigMessage } from '../compile/snapshot';
import { METADATA } from './common';
import { crossCheck } from './cross-checks';
import { DESTINATION_RULE_SPEC } from './destination-rule';
import { GATEWAY_SPEC } from './gateway';
import { Locator, Reporter, describe, isMapping, normaliseObject, type ObjectSchema } from './schema';
import { SERVICE_ENTRY_SPEC } from './service-entry';
import { API_VERSIONS, KINDS, type Kind, type Metadata, type Origin, type Resource, type Resources } from './types';
import { VIRTUAL_SERVICE_SPEC } from './virtual-service';

export interface LoadOptions {
  readonly defaultNamespace: string;
}

export interface LoadResult {
  readonly resources: Resources;
  readonly messages: readonly ConfigMessage[];
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
};

const CONFIG_EXTENSIONS = ['.yaml', '.yml', '.json'];
/** Top-level keys besides apiVersion/kind/metadata/spec that Kubernetes output carries. */
const IGNORED_TOP_LEVEL = new Set(['status']);
/** Guards against YAML alias bombs ("billion laughs"). */
const MAX_ALIAS_COUNT = 100;

export function loadPaths(paths: readonly string[], opts: LoadOptions): LoadResult {
  const read = readPaths(paths);
  const loaded = loadFiles(read.files, opts);
  return { resources: loaded.resources, messages: [...read.messages, ...loaded.messages] };
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

export function loadFiles(files: readonly SourceFile[], opts: LoadOptions): LoadResult {
  const messages: ConfigMessage[] = [];
  const loc = new Locator();
  const all: Resource[] = [];
  withPlainEnv(() => {
    for (const f of files) parseFile(f, opts, loc, all, messages);
  });

  const seen = new Map<string, Origin>();
  const unique: Resource[] = [];
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
  };
  crossCheck(resources, loc, messages);
  return { resources: deepFreeze(resources), messages };
}

function parseFile(f: SourceFile, opts: LoadOptions, loc: Locator, out: Resource[], messages: ConfigMessage[]): void {
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
      value.items.forEach((item, k) => parseResource(item, origin, `items[${k}].`, opts, loc, out, messages));
    } else {
      parseResource(value, origin, '', opts, loc, out, messages);
    }
  });
}

/**
 * Runs `fn` with `process.env` replaced by a plain copy. The yaml parser reads
 * `process.env.LOG_TOKENS` once per token, and the real `process.env` is a native interceptor
 * (a getenv per read): that was 30-40 % of parsing 10,000 ServiceEntries (issue 6). The parse is
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

function parseResource(raw: unknown, origin: Origin, prefix: string, opts: LoadOptions, loc: Locator, out: Resource[], messages: ConfigMessage[]): void {
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
  if (typeof kind !== 'string' || !(KINDS as readonly string[]).includes(kind)) {
    docRep.error(ConfigErrorCode.UNKNOWN_KIND, prefix === '' ? null : prefix.slice(0, -1),
      `unknown kind ${describe(kind)}; sluice reads ${KINDS.join(', ')} (or a List of them)`);
    return;
  }
  const rawName = isMapping(raw.metadata) && typeof raw.metadata.name === 'string' ? raw.metadata.name : '?';
  const rep = new Reporter(messages, origin, `${kind}/${rawName}`);

  const apiVersion = raw.apiVersion;
  if (apiVersion === undefined || apiVersion === null) rep.error(ConfigErrorCode.REQUIRED, prefix + 'apiVersion', 'missing required field');
  else if (typeof apiVersion !== 'string' || !(API_VERSIONS as readonly string[]).includes(apiVersion)) {
    rep.error(ConfigErrorCode.API_VERSION, prefix + 'apiVersion', `unsupported apiVersion ${describe(apiVersion)}; expected one of ${API_VERSIONS.join(', ')}`);
  }
  for (const key of Object.keys(raw)) {
    if (!['apiVersion', 'kind', 'metadata', 'spec'].includes(key) && !IGNORED_TOP_LEVEL.has(key)) {
      rep.warn(ConfigErrorCode.UNKNOWN_FIELD, prefix === '' ? null : prefix.slice(0, -1), `unknown field "${key}"`);
    }
  }
  const metadata = required(raw.metadata, prefix + 'metadata', rep) && normaliseObject(raw.metadata, METADATA, prefix + 'metadata', loc, rep);
  const spec = required(raw.spec, prefix + 'spec', rep) && normaliseObject(raw.spec, SPEC_SCHEMAS[kind as Kind], prefix + 'spec', loc, rep);
  if (!metadata || !spec || typeof metadata.name !== 'string') return;

  const md = { ...metadata, namespace: (metadata.namespace as string | undefined) ?? opts.defaultNamespace } as unknown as Metadata;
  const { name, namespace, ...rest } = md;
  out.push({ kind, apiVersion: apiVersion as string, metadata: { name, namespace, ...rest }, spec, origin } as Resource);
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
