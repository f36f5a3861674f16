// Load + compile of a reload on a worker thread ("a reload at that size does not stall
// traffic for more than one compile"). At 10,000 ServiceEntries a load + compile takes seconds of
// CPU; on the proxy's thread every connection would wait that long. Here the thread does the work
// (compile-thread.ts) and the proxy's event loop only pays for receiving the result: the
// structured-clone copy of the snapshot and refreeze(), taken in pieces of a few ms each between
// turns of the loop (snapshot-pieces.ts; in one clone, a 10,000-service snapshot blocked the loop
// for 0.5-1.2 s). Nothing of it is used before the last piece is in. Initial boot stays synchronous.
//
// One thread per source, started on the first reload and kept (its JIT stays warm), unref'd so it
// never keeps the process alive, terminated by close(). Requests are answered in order, one at a
// time: the source never sends a second before the first is answered.

import * as path from 'node:path';
import { Worker, type MessagePort } from 'node:worker_threads';
import type { CompileOptions } from '../compile/index';
import { indexListeners } from '../compile/lookup';
import type { ConfigMessage, Snapshot } from '../compile/snapshot';
import type { LoadOptions, LoadResult } from '../resources/load';
import type { Resources, ServiceEntry } from '../resources/types';
import { PIECE_BYTES, SLICE_MS, receivePieces } from './snapshot-pieces';

export interface CompileRequest {
  readonly id: number;
  readonly paths: readonly string[];
  /** Already loaded (the Kubernetes source): compiled as it is; `paths` are not read. */
  readonly loaded?: { readonly resources: Resources; readonly messages: readonly ConfigMessage[] };
  /**
   * With `loaded`: its ServiceEntries as a change to what the thread already holds (its
   * `serviceEntries` is then empty): every entry's key in order, and the entries the thread does
   * not have yet. 10,000 Services cost one structured clone on the first compile, then only what changed.
   */
  readonly entries?: { readonly keys: readonly string[]; readonly upserts: readonly ServiceEntry[] };
  readonly load: LoadOptions;
  readonly compile: CompileOptions;
  /** Fingerprint of the files last seen: the same bytes again need no work. */
  readonly fingerprint: string;
  /** Approximate bytes per piece of the snapshot (snapshot-pieces.ts). */
  readonly pieceBytes: number;
}

/** What the thread posts: a built snapshot is announced here and travels in pieces on `pieces.port`. */
export type ThreadReply =
  | Exclude<CompileReply, { kind: 'built' }>
  | {
    readonly id: number; readonly kind: 'built'; readonly fingerprint: string;
    readonly messages: readonly ConfigMessage[];
    readonly snapshot: null;
    /** Null when the messages hold an error (nothing compiled). */
    readonly pieces: { readonly port: MessagePort; readonly count: number; readonly raw: boolean } | null;
  };

export interface CompileWorkerOptions {
  /** Approximate bytes per piece (default PIECE_BYTES); tests make it tiny to cut small configs in many pieces. */
  readonly pieceBytes?: number;
  /** Longest run of piece-taking per turn of the event loop (default SLICE_MS). */
  readonly sliceMs?: number;
}

export type CompileReply =
  | { readonly id: number; readonly kind: 'unchanged'; readonly fingerprint: string }
  | {
    readonly id: number; readonly kind: 'built'; readonly fingerprint: string;
    /** Every read/load message, in the order the in-thread load gives them. */
    readonly messages: readonly ConfigMessage[];
    /** Null when the messages hold an error (nothing compiled). */
    readonly snapshot: Snapshot | null;
  }
  | { readonly id: number; readonly kind: 'failed'; readonly message: string };

/** What a reload produced: load messages and, when they hold no error, the compiled snapshot. */
export interface CompiledConfig {
  readonly messages: readonly ConfigMessage[];
  readonly snapshot: Snapshot | null;
  /** The thread failed (a crash, a bug): nothing was produced. */
  readonly failure: string | null;
}

export class CompileWorker {
  private worker: Worker | null = null;
  private nextId = 1;
  private pending: { id: number; resolve: (r: CompileReply) => void; reject: (e: Error) => void } | null = null;
  private closed = false;
  private readonly pieceBytes: number;
  private readonly sliceMs: number;
  /** The ServiceEntries the current thread holds (runLoaded), by key; a new thread holds none. */
  private threadEntries = new Map<string, ServiceEntry>();

  constructor(options: CompileWorkerOptions = {}) {
    this.pieceBytes = options.pieceBytes ?? PIECE_BYTES;
    this.sliceMs = options.sliceMs ?? SLICE_MS;
  }

  /** Reads `paths` and, if their fingerprint differs from `fingerprint`, loads and compiles them off-thread. */
  run(paths: readonly string[], load: LoadOptions, compile: CompileOptions, fingerprint: string): Promise<CompileReply> {
    return this.send({ paths, load, compile, fingerprint });
  }

  /**
   * Compiles resources loaded elsewhere (the Kubernetes source) off-thread; the reply is `built`
   * (or `failed`). ServiceEntries go as a change to what the thread holds: an entry the same
   * object as last time (keyed by its origin) is not sent again.
   */
  runLoaded(loaded: LoadResult, load: LoadOptions, compile: CompileOptions): Promise<CompileReply> {
    this.thread();
    const keys: string[] = [];
    const upserts: ServiceEntry[] = [];
    const sent = new Map<string, ServiceEntry>();
    for (const se of loaded.resources.serviceEntries) {
      const key = `${se.origin.file}:${se.origin.doc}`;
      keys.push(key);
      sent.set(key, se);
      if (this.threadEntries.get(key) !== se) upserts.push(se);
    }
    this.threadEntries = sent;
    const resources = { ...loaded.resources, serviceEntries: [] };
    return this.send({ paths: [], loaded: { resources, messages: loaded.messages }, entries: { keys, upserts }, load, compile, fingerprint: '' });
  }

  private send(req: Omit<CompileRequest, 'id' | 'pieceBytes'>): Promise<CompileReply> {
    if (this.closed) return Promise.reject(new Error('config worker closed'));
    if (this.pending !== null) return Promise.reject(new Error('config worker busy'));
    const w = this.thread();
    const id = this.nextId++;
    return new Promise<CompileReply>((resolve, reject) => {
      this.pending = { id, resolve, reject };
      w.postMessage({ ...req, id, pieceBytes: this.pieceBytes } satisfies CompileRequest);
    });
  }

  close(): void {
    this.closed = true;
    const w = this.worker;
    this.worker = null;
    this.fail(new Error('config worker closed'));
    if (w !== null) void w.terminate();
  }

  private thread(): Worker {
    if (this.worker !== null) return this.worker;
    const w = new Worker(path.join(__dirname, 'compile-thread.js'));
    this.threadEntries = new Map();
    w.unref();
    w.on('message', (reply: ThreadReply) => this.onReply(reply));
    // A crash (out of memory, a bug) fails the reload in progress; the next reload starts a new thread.
    w.on('error', (e) => this.lost(w, e));
    w.on('exit', (code) => this.lost(w, new Error(`config worker exited with code ${code}`)));
    this.worker = w;
    return w;
  }

  private onReply(reply: ThreadReply): void {
    const p = this.pending;
    if (p === null || p.id !== reply.id) {
      if (reply.kind === 'built') reply.pieces?.port.close();
      return;
    }
    if (reply.kind !== 'built') {
      this.pending = null;
      p.resolve(reply);
      return;
    }
    const built = { id: reply.id, kind: 'built', fingerprint: reply.fingerprint, messages: reply.messages } as const;
    if (reply.pieces === null) {
      this.pending = null;
      p.resolve({ ...built, snapshot: null });
      return;
    }
    // Still pending while the pieces come in: close() (or a crash) fails it and stops the taking.
    const stale = (): boolean => this.pending !== p;
    receivePieces(reply.pieces.port, reply.pieces.count, reply.pieces.raw, stale, this.sliceMs).then((root) => {
      if (stale()) return;
      this.pending = null;
      const snapshot = root as Snapshot;
      indexListeners(snapshot);
      p.resolve({ ...built, snapshot });
    }, (e: Error) => {
      if (stale()) return;
      this.pending = null;
      p.reject(e);
    });
  }

  private lost(w: Worker, e: Error): void {
    if (this.worker === w) this.worker = null;
    this.fail(e);
  }

  private fail(e: Error): void {
    const p = this.pending;
    this.pending = null;
    if (p !== null) p.reject(e);
  }
}

/**
 * One off-thread reload at a time for a source: asked again while one runs, it runs once more
 * after it (with what is current then), however often it was asked meanwhile.
 */
export class OneAtATime {
  private inFlight = false;
  private again = false;
  private readonly run: () => Promise<void>;
  private readonly closed: () => boolean;

  constructor(run: () => Promise<void>, closed: () => boolean) {
    this.run = run;
    this.closed = closed;
  }

  request(): void {
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = true;
    void this.run().finally(() => {
      this.inFlight = false;
      if (this.again && !this.closed()) {
        this.again = false;
        this.request();
      }
    });
  }
}
