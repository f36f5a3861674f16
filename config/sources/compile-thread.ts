// The body of the config worker thread (compile-worker.ts starts it): read the files, and when
// their bytes changed, load + validate + compile them here (or compile what the Kubernetes source
// loaded and sent), off the proxy's event loop, and post
// the snapshot back with every message. Same steps, same order and same messages as the in-thread
// path (files.ts FileSource.load + proxy/runtime.ts build). The snapshot goes in pieces on a port
// of its own (snapshot-pieces.ts), so the proxy can take it a few hundred KB per turn of its loop.

import { MessageChannel, parentPort } from 'node:worker_threads';
import { compile } from '../compile/index';
import { loadFiles, readPaths, type LoadResult } from '../resources/load';
import type { ServiceEntry } from '../resources/types';
import { fingerprintOf, merge } from './files';
import type { CompileRequest, ThreadReply } from './compile-worker';
import { splitGraph } from './snapshot-pieces';

/** ServiceEntries sent by runLoaded, by key: kept between requests, so only changes travel. */
let entries = new Map<string, ServiceEntry>();

function handle(req: CompileRequest): ThreadReply {
  let fingerprint = '';
  let loaded: LoadResult;
  if (req.loaded !== undefined) {
    loaded = req.loaded;
    if (req.entries !== undefined) {
      for (const se of req.entries.upserts) entries.set(`${se.origin.file}:${se.origin.doc}`, se);
      const next = new Map<string, ServiceEntry>();
      for (const k of req.entries.keys) {
        const se = entries.get(k);
        if (se === undefined) throw new Error(`config worker: ServiceEntry ${k} was never sent`);
        next.set(k, se);
      }
      entries = next;
      loaded = { messages: loaded.messages, resources: { ...loaded.resources, serviceEntries: [...next.values()] } };
    }
  } else {
    const read = readPaths(req.paths);
    fingerprint = fingerprintOf(read.files, read.messages);
    if (fingerprint === req.fingerprint) return { id: req.id, kind: 'unchanged', fingerprint };
    loaded = merge(read.messages, loadFiles(read.files, req.load));
  }
  // Like Runtime.build: a config with load errors is not compiled.
  if (loaded.messages.some((m) => m.level === 'error')) return { id: req.id, kind: 'built', fingerprint, messages: loaded.messages, snapshot: null, pieces: null };
  const split = splitGraph(compile(loaded.resources, req.compile), req.pieceBytes);
  const { port1, port2 } = new MessageChannel();
  // Posted before the reply announces them: they wait in port2's queue and travel with it.
  for (const piece of split.pieces) port1.postMessage(piece);
  port1.close();
  return { id: req.id, kind: 'built', fingerprint, messages: loaded.messages, snapshot: null, pieces: { port: port2, count: split.pieces.length, raw: split.raw } };
}

parentPort?.on('message', (req: CompileRequest) => {
  let reply: ThreadReply;
  try {
    reply = handle(req);
  } catch (e) {
    reply = { id: req.id, kind: 'failed', message: `config worker: ${(e as Error).stack ?? String(e)}` };
  }
  parentPort!.postMessage(reply, reply.kind === 'built' && reply.pieces !== null ? [reply.pieces.port] : []);
});
