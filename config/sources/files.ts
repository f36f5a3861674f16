// Config from files and directories, reloaded when they change.
//
// We watch DIRECTORIES, never the files themselves: editors save by writing a temp file and
// renaming it over the original (the watched inode goes away), and Kubernetes updates a mounted
// ConfigMap by swapping the `..data` symlink inside the mount directory, so the file's own
// inode never changes. A directory watch sees both. Events are only a hint: after a short quiet
// period we re-read everything and compare a fingerprint of the bytes, so unrelated events (an
// editor's swap file, a touch) do not cause reloads and a missed event cannot leave stale config
// once any later event arrives.
//
// With offThread(), a reload's read + load + compile run on a worker thread (compile-worker.ts)
// and the source reports the compiled snapshot; the first load() stays synchronous.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadFiles, readPaths, type LoadOptions, type LoadResult, type SourceFile } from '../resources/load';
import type { ConfigMessage } from '../compile/snapshot';
import type { CompileOptions } from '../compile/index';
import { CompileWorker, OneAtATime, type CompiledConfig } from './compile-worker';

/** Quiet period after the last event: editors and kubelet emit several events per save. */
const DEBOUNCE_MS = 100;
/** Upper bound on the delay, so a stream of events (a file being written slowly) still reloads. */
const MAX_DELAY_MS = 1000;

export class FileSource {
  private readonly paths: readonly string[];
  private readonly opts: LoadOptions;
  private readonly onChange: (r: LoadResult) => void;
  private watchers: fs.FSWatcher[] = [];
  private timer: NodeJS.Timeout | null = null;
  private firstEventAt = 0;
  private fingerprint = '';
  private closed = false;
  private offThreadCompile: { readonly options: CompileOptions; readonly onCompiled: (c: CompiledConfig) => void; readonly worker: CompileWorker } | null = null;
  /** Off-thread: one reload at a time; an event meanwhile reads once more after it. */
  private readonly offThreadReloads = new OneAtATime(() => this.compileOffThread(), () => this.closed);

  constructor(paths: readonly string[], opts: LoadOptions, onChange: (r: LoadResult) => void) {
    this.paths = paths;
    this.opts = opts;
    this.onChange = onChange;
    this.onEvent = this.onEvent.bind(this);
    this.reload = this.reload.bind(this);
  }

  /** Reads and loads now (sync); also the baseline later changes are compared with. */
  load(): LoadResult {
    const read = readPaths(this.paths);
    this.fingerprint = fingerprintOf(read.files, read.messages);
    return merge(read.messages, loadFiles(read.files, this.opts));
  }

  /**
   * Reloads from now on load and compile on a worker thread and report to `onCompiled` (instead of
   * `onChange` with the loaded resources), so the caller's event loop only receives the result.
   */
  offThread(options: CompileOptions, onCompiled: (c: CompiledConfig) => void): void {
    this.offThreadCompile ??= { options, onCompiled, worker: new CompileWorker() };
  }

  /** Starts watching. Call load() first (otherwise the first event reports the current config as a change). */
  start(): void {
    if (this.closed || this.watchers.length > 0) return;
    const dirs = new Set<string>();
    for (const p of this.paths) dirs.add(isDirectory(p) ? p : path.dirname(p));
    for (const dir of dirs) {
      try {
        const w = fs.watch(dir, { persistent: true }, this.onEvent);
        // The directory itself went away (volume unmounted): re-read, which reports the READ error.
        w.on('error', this.onEvent);
        this.watchers.push(w);
      } catch {
        // Missing directory: load() already reported it; nothing to watch until a restart.
      }
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    for (const w of this.watchers) w.close();
    this.watchers = [];
    this.offThreadCompile?.worker.close();
  }

  private onEvent(): void {
    if (this.closed) return;
    const now = Date.now();
    if (this.timer === null) this.firstEventAt = now;
    else clearTimeout(this.timer);
    const delay = Math.min(DEBOUNCE_MS, Math.max(0, this.firstEventAt + MAX_DELAY_MS - now));
    this.timer = setTimeout(this.reload, delay);
  }

  private reload(): void {
    this.timer = null;
    if (this.closed) return;
    if (this.offThreadCompile !== null) {
      this.reloadOffThread();
      return;
    }
    const read = readPaths(this.paths);
    const fp = fingerprintOf(read.files, read.messages);
    if (fp === this.fingerprint) return;
    this.fingerprint = fp;
    this.onChange(merge(read.messages, loadFiles(read.files, this.opts)));
  }

  private reloadOffThread(): void {
    this.offThreadReloads.request();
  }

  private async compileOffThread(): Promise<void> {
    const off = this.offThreadCompile!;
    try {
      const reply = await off.worker.run(this.paths, this.opts, off.options, this.fingerprint);
      if (this.closed || reply.kind === 'unchanged') return;
      if (reply.kind === 'failed') {
        // Fingerprint kept: the next event retries these bytes.
        off.onCompiled({ messages: [], snapshot: null, failure: reply.message });
        return;
      }
      this.fingerprint = reply.fingerprint;
      off.onCompiled({ messages: reply.messages, snapshot: reply.snapshot, failure: null });
    } catch (e) {
      if (!this.closed) off.onCompiled({ messages: [], snapshot: null, failure: (e as Error).message });
    }
  }
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

export function fingerprintOf(files: readonly SourceFile[], messages: readonly ConfigMessage[]): string {
  const h = createHash('sha256');
  for (const f of files) h.update(f.file).update('\0').update(f.text).update('\0');
  for (const m of messages) h.update(m.text).update('\0');
  return h.digest('hex');
}

export function merge(readMessages: readonly ConfigMessage[], r: LoadResult): LoadResult {
  return readMessages.length === 0 ? r : { resources: r.resources, messages: [...readMessages, ...r.messages] };
}
