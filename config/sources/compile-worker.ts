// Load + compile of a reload on a worker thread (issue 6: "a reload at that size does not stall
// traffic for more than one compile"). At 10,000 ServiceEntries a load + compile takes seconds of
// CPU; on the proxy's thread every connection would wait that long. Here the thread does the work
// (compile-thread.ts) and the proxy's event loop only pays for receiving the result: the
// structured-clone copy of the snapshot and refreeze(). Initial boot stays synchronous.
//
// One thread per source, started on the first reload and kept (its JIT stays warm), unref'd so it
// never keeps the process alive, terminated by close(). Requests are answered in order, one at a
// time: the source never sends a second before the first is answered.

import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { CompileOptions } from '../compile/index';
import { refreeze } from '../compile/freeze';
import { indexListeners } from '../compile/lookup';
import type { ConfigMessage, Snapshot } from '../compile/snapshot';
import type { LoadOptions } from '../resources/load';

export interface CompileRequest {
  readonly id: number;
  readonly paths: readonly string[];
  readonly load: LoadOptions;
  readonly compile: CompileOptions;
  /** Fingerprint of the files last seen: the same bytes again need no work. */
  readonly fingerprint: string;
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

  /** Reads `paths` and, if their fingerprint differs from `fingerprint`, loads and compiles them off-thread. */
  run(paths: readonly string[], load: LoadOptions, compile: CompileOptions, fingerprint: string): Promise<CompileReply> {
    if (this.closed) return Promise.reject(new Error('config worker closed'));
    if (this.pending !== null) return Promise.reject(new Error('config worker busy'));
    const w = this.thread();
    const id = this.nextId++;
    return new Promise<CompileReply>((resolve, reject) => {
      this.pending = { id, resolve, reject };
      w.postMessage({ id, paths, load, compile, fingerprint } satisfies CompileRequest);
    }).then(revive);
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
    w.unref();
    w.on('message', (reply: CompileReply) => {
      const p = this.pending;
      if (p === null || p.id !== reply.id) return;
      this.pending = null;
      p.resolve(reply);
    });
    // A crash (out of memory, a bug) fails the reload in progress; the next reload starts a new thread.
    w.on('error', (e) => this.lost(w, e));
    w.on('exit', (code) => this.lost(w, new Error(`config worker exited with code ${code}`)));
    this.worker = w;
    return w;
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

/** A snapshot arrives as plain unfrozen copies: make it what compile() returns (frozen, immutable maps, listener index built). */
function revive(reply: CompileReply): CompileReply {
  if (reply.kind === 'built' && reply.snapshot !== null) {
    refreeze(reply.snapshot);
    indexListeners(reply.snapshot);
  }
  return reply;
}
